import Synchronization

/// One domain, looked up once, for the length of one pipeline run.
///
/// Made by ``Hypervisor/session(for:)`` at the resolve phase; the run keeps it and makes every
/// hypervisor call of the run through it, so the domain is not looked up again per call.
public protocol DomainSession: Sendable {
    /// The UUID the session was opened for.
    var uuid: String { get }

    /// Everything the pipeline reads about the domain, in one consistent look.
    /// - Throws: ``HypervisorError``; ``HypervisorError/isGone`` when the domain does not exist.
    func snapshot() async throws(HypervisorError) -> DomainSnapshot

    /// The CD-ROM drives of the domain's persistent definition.
    func persistentDrives() async throws(HypervisorError) -> [ContextDrive]

    /// Changes the media of a CD-ROM (a new `<source>`; `nil` ejects).
    func changeMedia(drive: ContextDrive, to source: String?, scope: ChangeScope) async throws(HypervisorError)

    /// Opens a tray recorded open but shut in the emulator (``Hypervisor/reopenTray(of:drive:)``).
    /// - Returns: what was done; `nil` when the tray was not recorded open.
    func reopenTray(_ drive: ContextDrive) async throws(HypervisorError) -> String?

    /// Hot-unplugs a CD-ROM device (SCSI only).
    func detachDrive(_ drive: ContextDrive, scope: ChangeScope) async throws(HypervisorError)

    /// Hot-plugs a CD-ROM device like `drive` with `source` inserted (SCSI only).
    func attachDrive(_ drive: ContextDrive, source: String?, scope: ChangeScope) async throws(HypervisorError)

    /// Records the applied state in the domain's metadata (its own namespace).
    func setAppliedMetadata(_ xml: String, scope: ChangeScope) async throws(HypervisorError)
}

extension Hypervisor {
    /// A session that forwards to the per-call methods (each looks the domain up itself).
    ///
    /// The default for hypervisors without a cheaper way, such as test fakes.
    public func session(for uuid: String) async throws(HypervisorError) -> any DomainSession {
        ForwardingDomainSession(hypervisor: self, uuid: uuid)
    }
}

/// ``Hypervisor/session(for:)``'s default: the per-call methods, with the identity the last
/// ``snapshot()`` returned.
final class ForwardingDomainSession<H: Hypervisor>: DomainSession {
    let hypervisor: H
    let uuid: String
    private let identity: Mutex<DomainIdentity?> = Mutex(nil)

    init(hypervisor: H, uuid: String) {
        self.hypervisor = hypervisor
        self.uuid = uuid
    }

    private var domain: DomainIdentity {
        identity.withLock { $0 } ?? DomainIdentity(name: uuid, uuid: uuid)
    }

    func snapshot() async throws(HypervisorError) -> DomainSnapshot {
        let snapshot = try await hypervisor.snapshot(of: uuid)
        identity.withLock { $0 = snapshot.identity }
        return snapshot
    }

    func persistentDrives() async throws(HypervisorError) -> [ContextDrive] {
        try await hypervisor.persistentDrives(of: domain)
    }

    func changeMedia(drive: ContextDrive, to source: String?, scope: ChangeScope) async throws(HypervisorError) {
        try await hypervisor.changeMedia(of: domain, drive: drive, to: source, scope: scope)
    }

    func reopenTray(_ drive: ContextDrive) async throws(HypervisorError) -> String? {
        try await hypervisor.reopenTray(of: domain, drive: drive)
    }

    func detachDrive(_ drive: ContextDrive, scope: ChangeScope) async throws(HypervisorError) {
        try await hypervisor.detachDrive(of: domain, drive: drive, scope: scope)
    }

    func attachDrive(_ drive: ContextDrive, source: String?, scope: ChangeScope) async throws(HypervisorError) {
        try await hypervisor.attachDrive(of: domain, drive: drive, source: source, scope: scope)
    }

    func setAppliedMetadata(_ xml: String, scope: ChangeScope) async throws(HypervisorError) {
        try await hypervisor.setAppliedMetadata(xml, of: domain, scope: scope)
    }
}
