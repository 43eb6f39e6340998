import RecontextCore
import Synchronization
import Virt

/// The pipeline's ``Hypervisor`` over a libvirt connection.
///
/// Holds the current connection; the daemon replaces it after a reconnect. While disconnected,
/// every operation fails with a transient error, so runs are retried rather than lost.
///
/// Every libvirt call on a connection runs on that connection's own serial executor (one thread,
/// calls in order), never on Swift's cooperative pool, and one at a time: libvirt 9.0 crashed
/// with several calls in flight on one connection while libvirtd went away (issue 11). A
/// pipeline run looks its domain up once (``session(for:)``) and makes its calls through that.
///
/// Separate connections: ``connect()`` returns the one for events (its only calls are the event
/// registrations); the pipeline's calls go through `lanes` others, a domain always on the same
/// one (so different domains' runs do not queue behind each other's calls: with one connection the
/// 50-VM storms took 1.3-2.6 times as long, BENCHMARKS.md); guest channels use one of their own,
/// opened on first use. libvirtd 9.0 crashed in
/// `virNetServerClientCloseLocked` -> its close callback, walking the client's domain-event
/// callbacks, when a client that had registered them died with a request in flight: on this
/// split, the client with requests in flight has no event callbacks.
public final class LibvirtHypervisor: Hypervisor, Sendable {
    private let current = Mutex<LibvirtLink?>(nil)
    /// The libvirt URI.
    public let uri: String

    /// The metadata key (namespace prefix) of the applied-state element.
    public static let appliedKey = "recontext-applied"

    /// Connections for the pipeline's calls (see ``LibvirtLink``).
    public let lanes: Int

    /// Creates an adapter; ``connect()`` opens the connections.
    /// - Parameter lanes: connections for the pipeline's calls, each with one call at a time and a
    ///   domain always on the same one (the daemon passes `pipeline.concurrency`); 1 for libvirt's
    ///   test driver, whose connections do not share state.
    public init(uri: String, lanes: Int = 1) {
        self.uri = uri
        self.lanes = uri.hasPrefix("test:") ? 1 : max(1, lanes)
    }

    /// Opens new connections and makes them current; closes the ones they replace. Blocking:
    /// call it off the cooperative pool (e.g. in ``Blocking/run(_:)``).
    /// - Returns: the connection for events (``Connection/events()``); the pipeline's calls use
    ///   another one.
    @discardableResult
    public func connect() throws(VirtError) -> Connection {
        var opened: [Connection] = []
        do throws(VirtError) {
            for _ in 0...lanes { opened.append(try Connection.open(uri)) }
        } catch {
            for connection in opened { connection.close() }
            throw error
        }
        let link = LibvirtLink(uri: uri, calls: Array(opened.dropFirst()), events: opened[0])
        let old = current.withLock { state in
            defer { state = link }
            return state
        }
        old?.retire()
        return link.events
    }

    /// The current connection for calls, if any.
    public var connection: Connection? { current.withLock { $0?.connection } }

    /// Closes the current connection. Does not block: the close runs on the shared blocking
    /// executor (a close can be an RPC). ``disconnectAndWait()`` waits for it.
    public func closeConnection() {
        guard let old = takeLink() else { return }
        BlockingExecutor.shared.submit { old.retire() }
    }

    /// Closes the current connection and returns when it is closed, off the cooperative pool.
    public func disconnectAndWait() async {
        guard let old = takeLink() else { return }
        await Blocking.run { old.retire() }
    }

    private func takeLink() -> LibvirtLink? {
        current.withLock { state in
            defer { state = nil }
            return state
        }
    }

    /// The current connection and its executor; a transient error naming `operation` when there is none.
    func link(for operation: String) throws(HypervisorError) -> LibvirtLink {
        guard let link = current.withLock({ $0 }) else {
            throw HypervisorError(.transient, operation: operation, message: "not connected to \(uri)")
        }
        return link
    }

    /// Runs `body` with the current connection on its executor.
    func withConnection<T: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (Connection) throws(VirtError) -> T
    ) async throws(HypervisorError) -> T {
        try await link(for: operation).run(operation, body)
    }

    // MARK: - Hypervisor

    public func session(for uuid: String) async throws(HypervisorError) -> any DomainSession {
        LibvirtDomainSession(hypervisor: self, uuid: uuid)
    }

    public func snapshot(of uuid: String) async throws(HypervisorError) -> DomainSnapshot {
        try await LibvirtDomainSession(hypervisor: self, uuid: uuid).snapshot()
    }

    public func persistentDrives(of domain: DomainIdentity) async throws(HypervisorError) -> [ContextDrive] {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).persistentDrives()
    }

    public func activeDomains() async throws(HypervisorError) -> [DomainIdentity] {
        try await withConnection("list domains") { connection throws(VirtError) in
            try connection.listDomains(.active).map { DomainIdentity(name: $0.name, uuid: $0.uuid) }
        }
    }

    public func changeMedia(
        of domain: DomainIdentity, drive: ContextDrive, to source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).changeMedia(
            drive: drive, to: source, scope: scope)
    }

    public func reopenTray(of domain: DomainIdentity, drive: ContextDrive) async throws(HypervisorError) -> String? {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).reopenTray(drive)
    }

    public func detachDrive(of domain: DomainIdentity, drive: ContextDrive, scope: ChangeScope)
        async throws(HypervisorError)
    {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).detachDrive(drive, scope: scope)
    }

    public func attachDrive(
        of domain: DomainIdentity, drive: ContextDrive, source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).attachDrive(
            drive, source: source, scope: scope)
    }

    public func setAppliedMetadata(_ xml: String, of domain: DomainIdentity, scope: ChangeScope)
        async throws(HypervisorError)
    {
        try await LibvirtDomainSession(hypervisor: self, uuid: domain.uuid).setAppliedMetadata(xml, scope: scope)
    }

    public func knownDomains() async throws(HypervisorError) -> Set<String> {
        try await withConnection("list domains") { connection throws(VirtError) in
            Set(try connection.listDomains().map(\.uuid))
        }
    }

    public func referencedSources() async throws(HypervisorError) -> Set<String> {
        try await withConnection("list referenced images") { connection throws(VirtError) in
            var sources: Set<String> = []
            for domain in try connection.listDomains() {
                do throws(VirtError) {
                    if try domain.isActive() {
                        for cdrom in try domain.cdroms() { if let file = cdrom.sourceFile { sources.insert(file) } }
                    }
                    if try domain.isPersistent() {
                        for cdrom in try domain.cdroms(inactive: true) {
                            if let file = cdrom.sourceFile { sources.insert(file) }
                        }
                    }
                } catch  where error.isNoDomain {
                    continue // vanished while listing
                }
            }
            return sources
        }
    }
}

// MARK: - Mapping between the wrapper's and the pipeline's types

extension HypervisorError {
    /// Maps a libvirt error: not found, transient, unsupported or permanent.
    init(_ error: VirtError, operation: String) {
        // A domain that stopped while its run was under way ("domain is not running") is, for the
        // pipeline, gone from this host like one that was undefined or migrated away.
        let stopped = error.code == .operationInvalid && error.message.contains("not running")
        let kind: Kind =
            if error.isNoDomain || stopped { .noDomain } else if error.isTransient {
                .transient
            } else if error.isUnsupported {
                .unsupported
            } else { .permanent }
        self.init(
            kind, operation: operation, message: error.message, code: error.code.rawValue,
            refusedByTray: error.mentionsTray)
    }
}

extension DomainSnapshot.RunState {
    init(_ state: DomainState) {
        switch state {
        case .running, .blocked: self = .running
        case .paused, .pmSuspended: self = .paused
        case .shutoff, .shutdown, .crashed: self = .shutOff
        case .noState: self = .other
        }
    }
}

extension DomainModificationImpact {
    init(_ scope: ChangeScope) {
        var impact: DomainModificationImpact = []
        if scope.contains(.live) { impact.insert(.live) }
        if scope.contains(.config) { impact.insert(.config) }
        self = impact
    }
}

extension ContextDrive {
    /// Carries everything of the libvirt device the pipeline does not look at in its opaque `handle`.
    init(_ device: CDROMDevice) {
        var details: [String: String] = ["disk-type": device.diskType]
        if let alias = device.alias { details["alias"] = alias }
        if let policy = device.startupPolicy { details["startup-policy"] = policy }
        if let name = device.driverName { details["driver-name"] = name }
        if let type = device.driverType { details["driver-type"] = type }
        if device.isReadOnly { details["readonly"] = "yes" }
        for (key, value) in device.address { details["address.\(key)"] = value }
        self.init(target: device.target, bus: device.bus, source: device.sourceFile, handle: DriveHandle(details))
    }
}

extension CDROMDevice {
    init(_ drive: ContextDrive) {
        var address: [String: String] = [:]
        for (key, value) in drive.handle.allFields where key.hasPrefix("address.") {
            address[String(key.dropFirst("address.".count))] = value
        }
        self.init(
            diskType: drive.handle["disk-type"] ?? "file", target: drive.target, bus: drive.bus,
            sourceFile: drive.source, startupPolicy: drive.handle["startup-policy"], alias: drive.handle["alias"],
            isReadOnly: drive.handle["readonly"] == "yes", driverName: drive.handle["driver-name"],
            driverType: drive.handle["driver-type"], address: address)
    }
}
