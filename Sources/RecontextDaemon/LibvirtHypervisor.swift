import RecontextCore
import Synchronization
import Virt

/// The pipeline's ``Hypervisor`` over a libvirt connection.
///
/// Holds the current connection; the daemon replaces it after a reconnect. While disconnected,
/// every operation fails with a transient error, so runs are retried rather than lost.
public final class LibvirtHypervisor: Hypervisor, Sendable {
    private let current = Mutex<Connection?>(nil)
    /// The libvirt URI.
    public let uri: String

    /// The metadata key (namespace prefix) of the applied-state element.
    public static let appliedKey = "recontext-applied"

    /// Creates an adapter; ``connect()`` opens the connection.
    public init(uri: String) {
        self.uri = uri
    }

    /// Opens a new connection and makes it current. Blocking.
    @discardableResult
    public func connect() throws(VirtError) -> Connection {
        let connection = try Connection.open(uri)
        let old = current.withLock { state in
            defer { state = connection }
            return state
        }
        old?.close()
        return connection
    }

    /// The current connection, if any.
    public var connection: Connection? { current.withLock { $0 } }

    /// Closes the current connection. Blocking (an RPC); ``disconnect()`` runs it off the pool.
    public func disconnectNow() {
        let old = current.withLock { state in
            defer { state = nil }
            return state
        }
        old?.close()
    }

    private func withConnection<T: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (Connection) throws(VirtError) -> T
    ) async throws(HypervisorError) -> T {
        guard let connection = current.withLock({ $0 }) else {
            throw HypervisorError(.transient, operation: operation, message: "not connected to \(uri)")
        }
        do {
            return try await Blocking.run { () throws(VirtError) -> T in try body(connection) }
        } catch {
            throw HypervisorError(error, operation: operation)
        }
    }

    // MARK: - Hypervisor

    public func snapshot(of uuid: String) async throws(HypervisorError) -> DomainSnapshot {
        try await withConnection("resolve \(uuid)") { connection throws(VirtError) in
            let domain = try connection.domain(uuid: uuid)
            let state = try domain.state()
            let persistent = try domain.isPersistent()
            let runState = DomainSnapshot.RunState(state.state)
            guard runState == .running || runState == .paused else {
                // A domain that is not running has no live definition to read; nothing to do.
                return DomainSnapshot(
                    identity: DomainIdentity(name: domain.name, uuid: domain.uuid), state: runState,
                    isPersistent: persistent, drives: [], contextMetadata: nil, appliedMetadata: nil)
            }
            let drives = try domain.cdroms().map(ContextDrive.init)
            let context = try domain.metadata(namespace: ContextMetadata.namespaceURI, impact: .live)
            let applied = try domain.metadata(namespace: AppliedMetadata.namespaceURI, impact: .live)
            return DomainSnapshot(
                identity: DomainIdentity(name: domain.name, uuid: domain.uuid),
                state: runState, isPersistent: persistent, drives: drives,
                contextMetadata: context, appliedMetadata: applied)
        }
    }

    public func persistentDrives(of domain: DomainIdentity) async throws(HypervisorError) -> [ContextDrive] {
        try await withConnection("read the persistent definition") { connection throws(VirtError) in
            try connection.domain(uuid: domain.uuid).cdroms(inactive: true).map(ContextDrive.init)
        }
    }

    public func activeDomains() async throws(HypervisorError) -> [DomainIdentity] {
        try await withConnection("list domains") { connection throws(VirtError) in
            try connection.listDomains(.active).map { DomainIdentity(name: $0.name, uuid: $0.uuid) }
        }
    }

    public func changeMedia(
        of domain: DomainIdentity, drive: ContextDrive, to source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        let xml = CDROMDevice(drive).xml(source: source)
        // Forced on the live domain: a Linux guest locks the drive door while the disc is mounted,
        // and an unforced change then asks the guest to eject, waits 5 s and fails ("timed out
        // waiting to open tray"). Forcing opens the tray regardless; the guest sees the new disc.
        let impact = DomainModificationImpact(scope).union(scope.contains(.live) ? .force : [])
        try await withConnection("change media of \(drive.target) (\(scope))") { connection throws(VirtError) in
            try connection.domain(uuid: domain.uuid).updateDevice(xml: xml, impact: impact)
        }
    }

    public func detachDrive(of domain: DomainIdentity, drive: ContextDrive, scope: ChangeScope)
        async throws(HypervisorError)
    {
        let xml = CDROMDevice(drive).xml(source: drive.source)
        try await withConnection("detach \(drive.target) (\(scope))") { connection throws(VirtError) in
            try connection.domain(uuid: domain.uuid).detachDevice(xml: xml, impact: DomainModificationImpact(scope))
        }
    }

    public func attachDrive(
        of domain: DomainIdentity, drive: ContextDrive, source: String?, scope: ChangeScope
    ) async throws(HypervisorError) {
        let xml = CDROMDevice(drive).xml(source: source)
        try await withConnection("attach \(drive.target) (\(scope))") { connection throws(VirtError) in
            try connection.domain(uuid: domain.uuid).attachDevice(xml: xml, impact: DomainModificationImpact(scope))
        }
    }

    public func setAppliedMetadata(_ xml: String, of domain: DomainIdentity, scope: ChangeScope)
        async throws(HypervisorError)
    {
        try await withConnection("record applied state (\(scope))") { connection throws(VirtError) in
            try connection.domain(uuid: domain.uuid).setMetadata(
                xml, key: Self.appliedKey, namespace: AppliedMetadata.namespaceURI,
                impact: DomainModificationImpact(scope))
        }
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
        self.init(kind, operation: operation, message: error.message, code: error.code.rawValue)
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
    /// Carries everything of the libvirt device the pipeline does not look at in `details`.
    init(_ device: CDROMDevice) {
        var details: [String: String] = ["disk-type": device.diskType]
        if let alias = device.alias { details["alias"] = alias }
        if let policy = device.startupPolicy { details["startup-policy"] = policy }
        if let name = device.driverName { details["driver-name"] = name }
        if let type = device.driverType { details["driver-type"] = type }
        if device.isReadOnly { details["readonly"] = "yes" }
        for (key, value) in device.address { details["address.\(key)"] = value }
        self.init(target: device.target, bus: device.bus, source: device.sourceFile, details: details)
    }
}

extension CDROMDevice {
    init(_ drive: ContextDrive) {
        var address: [String: String] = [:]
        for (key, value) in drive.details where key.hasPrefix("address.") {
            address[String(key.dropFirst("address.".count))] = value
        }
        self.init(
            diskType: drive.details["disk-type"] ?? "file", target: drive.target, bus: drive.bus,
            sourceFile: drive.source, startupPolicy: drive.details["startup-policy"], alias: drive.details["alias"],
            isReadOnly: drive.details["readonly"] == "yes", driverName: drive.details["driver-name"],
            driverType: drive.details["driver-type"], address: address)
    }
}
