import Foundation
import RecontextCore
import Synchronization

/// An in-memory ``Hypervisor`` for unit tests of the pipeline logic.
///
/// It keeps domains with their state, persistence, CD-ROM drives (live and persistent
/// definitions separately, so a test can check that the persistent definition names the new image
/// too), context metadata and applied-state metadata (live and config). It records every call in
/// order, can fail any operation on demand, can delay or hold calls (to test concurrency and
/// coalescing) and counts how many calls run at once, per domain and overall.
///
/// It behaves like libvirt where the pipeline depends on it: a config change of a transient
/// domain fails, a live change of an inactive domain fails, detach and attach work on SCSI drives
/// only, and every operation on a missing domain fails with ``HypervisorError/Kind/noDomain``.
///
/// - Important: For unit tests of pipeline logic only. Every method is thread-safe; the state is
///   behind one `Mutex`, never held across a suspension point.
public final class FakeHypervisor: Hypervisor {
    // MARK: - Types

    /// The operations of ``Hypervisor``.
    public enum Operation: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case snapshot, persistentDrives, activeDomains, changeMedia, reopenTray, detachDrive, attachDrive,
            setAppliedMetadata, referencedSources, knownDomains
        public var description: String { rawValue }
    }

    /// A domain as the fake keeps it.
    public struct Domain: Sendable, Hashable {
        /// Name and UUID.
        public var identity: DomainIdentity
        /// Running, paused, ...
        public var state: DomainSnapshot.RunState
        /// Whether the domain has a persistent definition.
        public var isPersistent: Bool
        /// The CD-ROM drives of the running domain.
        public var liveDrives: [ContextDrive]
        /// The CD-ROM drives of the persistent definition (ignored for a transient domain).
        public var configDrives: [ContextDrive]
        /// The context metadata element (as libvirt returns it), or `nil`.
        public var contextMetadata: String?
        /// The applied-state element of the running domain, or `nil`.
        public var liveApplied: String?
        /// The applied-state element of the persistent definition, or `nil`.
        public var configApplied: String?
        /// Live drives whose tray is recorded open but shut (libvirt's stale record after the
        /// guest reset the drive): every live media change of them is refused by the tray until
        /// ``FakeHypervisor/reopenTray(of:drive:)`` opens it.
        public var staleTrays: Set<String> = []

        /// Creates a domain; the persistent definition starts with the same drives as the live one.
        public init(
            identity: DomainIdentity, state: DomainSnapshot.RunState = .running, isPersistent: Bool = true,
            drives: [ContextDrive], contextMetadata: String?, applied: String? = nil
        ) {
            self.identity = identity
            self.state = state
            self.isPersistent = isPersistent
            self.liveDrives = drives
            self.configDrives = isPersistent ? drives : []
            self.contextMetadata = contextMetadata
            self.liveApplied = applied
            self.configApplied = isPersistent ? applied : nil
        }

        /// The live drive with `target`.
        public func liveDrive(_ target: String) -> ContextDrive? { liveDrives.first { $0.target == target } }
        /// The persistent drive with `target`.
        public func configDrive(_ target: String) -> ContextDrive? { configDrives.first { $0.target == target } }
    }

    /// One call, as recorded.
    public struct Call: Sendable, Hashable, CustomStringConvertible {
        /// The operation.
        public var operation: Operation
        /// The domain's UUID, for per-domain operations.
        public var uuid: String?
        /// The drive's target, for drive operations.
        public var target: String?
        /// The requested source (change media, attach), `nil` for an eject or an empty drive.
        public var source: String?
        /// The requested scope, for changes.
        public var scope: ChangeScope?
        /// The XML given to ``FakeHypervisor/setAppliedMetadata(_:of:scope:)``.
        public var xml: String?
        /// The error the call ended with, or `nil` when it succeeded.
        public var error: HypervisorError.Kind?

        /// Whether the call succeeded.
        public var succeeded: Bool { error == nil }

        public var description: String {
            var text = "\(operation)"
            if let scope { text += "(\(scope))" }
            if let target { text += " \(target)" }
            if let source { text += " <- \(source)" }
            if let error { text += " !\(error.rawValue)" }
            return text
        }
    }

    /// An injected failure.
    public struct Failure: Sendable {
        /// Which calls it applies to.
        public var matches: @Sendable (Call) -> Bool
        /// The kind of error thrown.
        public var kind: HypervisorError.Kind
        /// How many more calls fail; `nil` for all of them.
        public var remaining: Int?
        /// Whether the domain disappears (undefined, or migrated away) as the call fails.
        public var vanishes: Bool
        /// Whether the error says the drive's tray refused the step (``HypervisorError/refusedByTray``).
        public var refusedByTray: Bool
    }

    private struct Held: Sendable {
        var operation: Operation
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State: Sendable {
        var domains: [String: Domain] = [:]
        var calls: [Call] = []
        var failures: [Failure] = []
        var delays: [Operation: Duration] = [:]
        var holding: Set<Operation> = []
        var held: [Held] = []
        var heldWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var inFlight: [String: Int] = [:]
        var inFlightTotal = 0
        var maxInFlight: [String: Int] = [:]
        var maxInFlightTotal = 0
    }

    private let state = Mutex(State())

    /// Creates a fake with the given domains.
    public init(domains: [Domain] = []) {
        state.withLock { state in
            for domain in domains { state.domains[domain.identity.uuid] = domain }
        }
    }

    // MARK: - Setting up

    /// Adds or replaces a domain.
    public func add(_ domain: Domain) {
        state.withLock { $0.domains[domain.identity.uuid] = domain }
    }

    /// Removes a domain (it was undefined or migrated away).
    public func remove(uuid: String) {
        state.withLock { _ = $0.domains.removeValue(forKey: uuid.lowercased()) }
    }

    /// Changes a domain in place (e.g. its metadata or state).
    public func update(_ uuid: String, _ body: @Sendable (inout Domain) -> Void) {
        state.withLock { state in
            if var domain = state.domains[uuid.lowercased()] {
                body(&domain)
                state.domains[uuid.lowercased()] = domain
            }
        }
    }

    /// Makes matching calls fail.
    /// - Parameters:
    ///   - operation: The operation that fails.
    ///   - scope: Only calls with exactly this scope (`nil`: any).
    ///   - uuid: Only calls for this domain (`nil`: any).
    ///   - times: How many calls fail; `nil` for all of them.
    ///   - kind: The kind of error.
    ///   - vanishes: Whether the domain disappears as the call fails (throws `noDomain`).
    ///   - refusedByTray: Whether the error says the drive's tray refused the step.
    public func fail(
        _ operation: Operation, scope: ChangeScope? = nil, uuid: String? = nil, times: Int? = 1,
        kind: HypervisorError.Kind = .transient, vanishes: Bool = false, refusedByTray: Bool = false
    ) {
        let uuid = uuid?.lowercased()
        fail(
            where: { call in
                call.operation == operation && (scope == nil || call.scope == scope)
                    && (uuid == nil || call.uuid == uuid)
            }, times: times, kind: vanishes ? .noDomain : kind, vanishes: vanishes, refusedByTray: refusedByTray)
    }

    /// Makes the calls that `matches` accepts fail (the call's `error` is not set yet when asked).
    public func fail(
        where matches: @escaping @Sendable (Call) -> Bool, times: Int? = 1, kind: HypervisorError.Kind = .transient,
        vanishes: Bool = false, refusedByTray: Bool = false
    ) {
        precondition(times.map { $0 > 0 } ?? true, "times must be positive")
        state.withLock {
            $0.failures.append(
                Failure(
                    matches: matches, kind: kind, remaining: times, vanishes: vanishes, refusedByTray: refusedByTray))
        }
    }

    /// Removes every injected failure.
    public func clearFailures() {
        state.withLock { $0.failures.removeAll() }
    }

    /// Delays every call of `operation` (or of every operation, when `nil`) by `duration`.
    public func delay(_ operation: Operation? = nil, by duration: Duration) {
        state.withLock { state in
            for op in operation.map({ [$0] }) ?? Operation.allCases { state.delays[op] = duration }
        }
    }

    /// Holds every later call of `operation` until ``release()`` (while counting it as in flight).
    public func hold(_ operation: Operation) {
        state.withLock { _ = $0.holding.insert(operation) }
    }

    /// Stops holding and lets every held call continue.
    public func release() {
        let held = state.withLock { state in
            state.holding.removeAll()
            defer { state.held.removeAll() }
            return state.held
        }
        for call in held { call.continuation.resume() }
    }

    /// Lets the oldest held call continue (later calls keep being held).
    public func releaseOne() {
        let first: Held? = state.withLock { state in
            state.held.isEmpty ? nil : state.held.removeFirst()
        }
        first?.continuation.resume()
    }

    /// How many calls are held now.
    public var heldCount: Int { state.withLock { $0.held.count } }

    /// Waits until at least `count` calls are held.
    public func waitUntilHeld(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.held.count >= count { return true }
                state.heldWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    // MARK: - Inspecting

    /// Every call so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The calls so far of one operation (optionally of one domain).
    public func calls(_ operation: Operation, uuid: String? = nil) -> [Call] {
        calls.filter { $0.operation == operation && (uuid == nil || $0.uuid == uuid?.lowercased()) }
    }

    /// The calls that change devices or metadata (change media, detach, attach, applied state).
    public var mutatingCalls: [Call] {
        calls.filter { [.changeMedia, .detachDrive, .attachDrive, .setAppliedMetadata].contains($0.operation) }
    }

    /// Forgets the recorded calls and the concurrency maxima.
    public func resetCalls() {
        state.withLock { state in
            state.calls.removeAll()
            state.maxInFlight.removeAll()
            state.maxInFlightTotal = state.inFlightTotal
        }
    }

    /// A domain's current state, or `nil` when it does not exist.
    public func domain(_ uuid: String) -> Domain? {
        state.withLock { $0.domains[uuid.lowercased()] }
    }

    /// The most calls that ran at once for one domain.
    public func maxConcurrentCalls(uuid: String) -> Int {
        state.withLock { $0.maxInFlight[uuid.lowercased()] ?? 0 }
    }

    /// The most calls that ran at once for any single domain.
    public var maxConcurrentCallsPerDomain: Int { state.withLock { $0.maxInFlight.values.max() ?? 0 } }

    /// The most calls that ran at once overall.
    public var maxConcurrentCalls: Int { state.withLock { $0.maxInFlightTotal } }

    // MARK: - Hypervisor

    public func snapshot(of uuid: String) async throws(HypervisorError) -> DomainSnapshot {
        let uuid = uuid.lowercased()
        return try await perform(Call(operation: .snapshot, uuid: uuid)) { state throws(HypervisorError) in
            let domain = try Self.existing(uuid, in: state, operation: "snapshot")
            return DomainSnapshot(
                identity: domain.identity, state: domain.state, isPersistent: domain.isPersistent,
                drives: domain.liveDrives,
                contextMetadata: domain.contextMetadata, appliedMetadata: domain.liveApplied)
        }
    }

    public func persistentDrives(of domain: DomainIdentity) async throws(HypervisorError) -> [ContextDrive] {
        try await perform(Call(operation: .persistentDrives, uuid: domain.uuid)) { state throws(HypervisorError) in
            let current = try Self.existing(domain.uuid, in: state, operation: "persistentDrives")
            return current.isPersistent ? current.configDrives : []
        }
    }

    public func activeDomains() async throws(HypervisorError) -> [DomainIdentity] {
        try await perform(Call(operation: .activeDomains)) { state throws(HypervisorError) in
            state.domains.values.filter { $0.state == .running || $0.state == .paused }.map(\.identity)
                .sorted { $0.name < $1.name }
        }
    }

    public func changeMedia(
        of domain: DomainIdentity, drive: ContextDrive, to source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        let call = Call(operation: .changeMedia, uuid: domain.uuid, target: drive.target, source: source, scope: scope)
        try await perform(call) { state throws(HypervisorError) in
            let operation = "changeMedia(\(scope))"
            var current = try Self.existing(domain.uuid, in: state, operation: operation)
            try Self.check(scope, of: current, operation: operation)
            if scope.contains(.live) {
                guard let index = current.liveDrives.firstIndex(where: { $0.target == drive.target }) else {
                    throw HypervisorError(.permanent, operation: operation, message: "no live CD-ROM \(drive.target)")
                }
                if current.staleTrays.contains(drive.target) {
                    throw HypervisorError(
                        .transient, operation: operation,
                        message: "'blockdev-remove-medium': Tray of device '\(drive.target)' is not open",
                        refusedByTray: true)
                }
                current.liveDrives[index].source = source
            }
            if scope.contains(.config) {
                guard let index = current.configDrives.firstIndex(where: { $0.target == drive.target }) else {
                    throw HypervisorError(
                        .permanent, operation: operation, message: "no persistent CD-ROM \(drive.target)")
                }
                current.configDrives[index].source = source
            }
            state.domains[domain.uuid] = current
        }
    }

    public func reopenTray(of domain: DomainIdentity, drive: ContextDrive) async throws(HypervisorError) -> String? {
        try await perform(Call(operation: .reopenTray, uuid: domain.uuid, target: drive.target)) {
            state throws(HypervisorError) -> String? in
            var current = try Self.existing(domain.uuid, in: state, operation: "reopenTray")
            guard current.staleTrays.remove(drive.target) != nil else { return nil }
            state.domains[domain.uuid] = current
            return "opened it (fake)"
        }
    }

    public func detachDrive(of domain: DomainIdentity, drive: ContextDrive, scope: ChangeScope)
        async throws(HypervisorError)
    {
        let call = Call(
            operation: .detachDrive, uuid: domain.uuid, target: drive.target, source: drive.source, scope: scope)
        try await perform(call) { state throws(HypervisorError) in
            let operation = "detachDrive(\(scope))"
            var current = try Self.existing(domain.uuid, in: state, operation: operation)
            try Self.check(scope, of: current, operation: operation)
            guard drive.bus == "scsi" else {
                throw HypervisorError(
                    .unsupported, operation: operation, message: "cannot hot-unplug a \(drive.bus) CD-ROM")
            }
            if scope.contains(.live) {
                guard let index = current.liveDrives.firstIndex(where: { $0.target == drive.target }) else {
                    throw HypervisorError(.permanent, operation: operation, message: "no live CD-ROM \(drive.target)")
                }
                current.liveDrives.remove(at: index)
            }
            if scope.contains(.config) {
                guard let index = current.configDrives.firstIndex(where: { $0.target == drive.target }) else {
                    throw HypervisorError(
                        .permanent, operation: operation, message: "no persistent CD-ROM \(drive.target)")
                }
                current.configDrives.remove(at: index)
            }
            state.domains[domain.uuid] = current
        }
    }

    public func attachDrive(
        of domain: DomainIdentity, drive: ContextDrive, source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        let call = Call(operation: .attachDrive, uuid: domain.uuid, target: drive.target, source: source, scope: scope)
        try await perform(call) { state throws(HypervisorError) in
            let operation = "attachDrive(\(scope))"
            var current = try Self.existing(domain.uuid, in: state, operation: operation)
            try Self.check(scope, of: current, operation: operation)
            guard drive.bus == "scsi" else {
                throw HypervisorError(
                    .unsupported, operation: operation, message: "cannot hot-plug a \(drive.bus) CD-ROM")
            }
            var attached = drive
            attached.source = source
            if scope.contains(.live) {
                guard !current.liveDrives.contains(where: { $0.target == drive.target }) else {
                    throw HypervisorError(
                        .permanent, operation: operation, message: "target \(drive.target) already exists")
                }
                current.liveDrives.append(attached)
            }
            if scope.contains(.config) {
                guard !current.configDrives.contains(where: { $0.target == drive.target }) else {
                    throw HypervisorError(
                        .permanent, operation: operation, message: "target \(drive.target) already exists")
                }
                current.configDrives.append(attached)
            }
            state.domains[domain.uuid] = current
        }
    }

    public func setAppliedMetadata(_ xml: String, of domain: DomainIdentity, scope: ChangeScope)
        async throws(HypervisorError)
    {
        let call = Call(operation: .setAppliedMetadata, uuid: domain.uuid, scope: scope, xml: xml)
        try await perform(call) { state throws(HypervisorError) in
            let operation = "setAppliedMetadata(\(scope))"
            var current = try Self.existing(domain.uuid, in: state, operation: operation)
            try Self.check(scope, of: current, operation: operation)
            if scope.contains(.live) { current.liveApplied = xml }
            if scope.contains(.config) { current.configApplied = xml }
            state.domains[domain.uuid] = current
        }
    }

    public func knownDomains() async throws(HypervisorError) -> Set<String> {
        try await perform(Call(operation: .knownDomains)) { state throws(HypervisorError) in
            Set(state.domains.keys)
        }
    }

    public func referencedSources() async throws(HypervisorError) -> Set<String> {
        try await perform(Call(operation: .referencedSources)) { state throws(HypervisorError) in
            var sources: Set<String> = []
            for domain in state.domains.values {
                for drive in domain.liveDrives + domain.configDrives {
                    if let source = drive.source { sources.insert(source) }
                }
            }
            return sources
        }
    }

    // MARK: - Internals

    /// Records the call, counts it in flight, applies delay, hold and injected failures, then
    /// runs `body` on the state.
    private func perform<T: Sendable>(
        _ call: Call, _ body: (inout State) throws(HypervisorError) -> T
    ) async throws(HypervisorError) -> T {
        let (delay, holds) = state.withLock { state in
            state.inFlightTotal += 1
            state.maxInFlightTotal = max(state.maxInFlightTotal, state.inFlightTotal)
            if let uuid = call.uuid {
                state.inFlight[uuid, default: 0] += 1
                state.maxInFlight[uuid] = max(state.maxInFlight[uuid] ?? 0, state.inFlight[uuid]!)
            }
            return (state.delays[call.operation], state.holding.contains(call.operation))
        }
        if let delay { try? await Task.sleep(for: delay) } // a sleep on purpose: the injected latency
        if holds {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let (release, ready) = state.withLock { state in
                    guard state.holding.contains(call.operation) else {
                        return (true, [CheckedContinuation<Void, Never>]())
                    }
                    state.held.append(Held(operation: call.operation, continuation: continuation))
                    let count = state.held.count
                    let ready = state.heldWaiters.filter { $0.count <= count }.map(\.continuation)
                    state.heldWaiters.removeAll { $0.count <= count }
                    return (false, ready)
                }
                for waiter in ready { waiter.resume() }
                if release { continuation.resume() }
            }
        }
        return try state.withLock { state throws(HypervisorError) -> T in
            defer {
                state.inFlightTotal -= 1
                if let uuid = call.uuid { state.inFlight[uuid, default: 1] -= 1 }
            }
            var recorded = call
            if let index = state.failures.firstIndex(where: { $0.matches(call) }) {
                let failure = state.failures[index]
                if let remaining = failure.remaining {
                    if remaining <= 1 {
                        state.failures.remove(at: index)
                    } else {
                        state.failures[index].remaining = remaining - 1
                    }
                }
                if failure.vanishes, let uuid = call.uuid { state.domains.removeValue(forKey: uuid) }
                recorded.error = failure.kind
                state.calls.append(recorded)
                throw HypervisorError(
                    failure.kind, operation: Self.name(of: call),
                    message: failure.refusedByTray
                        ? "injected: Tray of device 'scsi0-0-0-0' is not open"
                        : "injected \(failure.kind.rawValue) failure",
                    refusedByTray: failure.refusedByTray)
            }
            do throws(HypervisorError) {
                let result = try body(&state)
                state.calls.append(recorded)
                return result
            } catch {
                recorded.error = error.kind
                state.calls.append(recorded)
                throw error
            }
        }
    }

    private static func name(of call: Call) -> String {
        call.scope.map { "\(call.operation)(\($0))" } ?? "\(call.operation)"
    }

    private static func existing(_ uuid: String, in state: State, operation: String) throws(HypervisorError) -> Domain {
        guard let domain = state.domains[uuid] else {
            throw HypervisorError(
                .noDomain, operation: operation, message: "Domain not found: no domain with matching uuid '\(uuid)'")
        }
        return domain
    }

    /// Fails as libvirt does for a config change of a transient domain or a live change of an
    /// inactive one.
    private static func check(_ scope: ChangeScope, of domain: Domain, operation: String) throws(HypervisorError) {
        if scope.contains(.config) && !domain.isPersistent {
            throw HypervisorError(
                .permanent, operation: operation, message: "cannot change persistent config of a transient domain")
        }
        if scope.contains(.live) && !(domain.state == .running || domain.state == .paused) {
            throw HypervisorError(.permanent, operation: operation, message: "domain is not running")
        }
    }
}
