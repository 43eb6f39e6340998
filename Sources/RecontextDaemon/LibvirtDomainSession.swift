import RecontextCore
import Synchronization
import Virt

/// One domain of a ``LibvirtHypervisor``, looked up once for a pipeline run.
///
/// The look-up happens on the first call, on the connection's executor, and the `Domain` is
/// kept for the following calls; only a reconnect in between (a new connection) makes it look
/// the domain up again. Before: every adapter call looked the domain up and started a thread,
/// 3-4 redundant look-ups and 8 threads per applied run.
final class LibvirtDomainSession: DomainSession {
    let hypervisor: LibvirtHypervisor
    let uuid: String
    /// The domain and the link it was looked up on; used only on that link's executor thread.
    private let bound = Mutex<(link: LibvirtLink, domain: Domain)?>(nil)
    private let lookupCount = Mutex(0)

    /// How many times the session looked its domain up (1 per run; 1 more per reconnect).
    var lookups: Int { lookupCount.withLock { $0 } }

    init(hypervisor: LibvirtHypervisor, uuid: String) {
        self.hypervisor = hypervisor
        self.uuid = uuid
    }

    deinit {
        // The last reference to a Domain can close its connection (an RPC): drop it on the
        // executor, not on whatever (cooperative) thread drops the session.
        if let (link, domain) = bound.withLock({ $0.take() }) {
            link.lane(for: uuid).executor.submit { withExtendedLifetime(domain) {} }
        }
    }

    /// Runs `body` with the domain on the current connection's executor.
    private func withDomain<T: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (Domain) throws(VirtError) -> T
    ) async throws(HypervisorError) -> T {
        let link = try hypervisor.link(for: operation)
        return try await link.run(operation, for: uuid) { [self] connection throws(VirtError) -> T in
            try body(try domain(on: link, connection: connection))
        }
    }

    /// The bound domain when it was looked up on `link`, else a new look-up (on `link`'s thread).
    private func domain(on link: LibvirtLink, connection: Connection) throws(VirtError) -> Domain {
        if let bound = bound.withLock({ $0 }), bound.link === link { return bound.domain }
        let domain = try connection.domain(uuid: uuid)
        lookupCount.withLock { $0 += 1 }
        let replaced = bound.withLock { state in
            defer { state = (link, domain) }
            return state
        }
        withExtendedLifetime(replaced) {} // released here, off the cooperative pool
        return domain
    }

    // MARK: - DomainSession

    func snapshot() async throws(HypervisorError) -> DomainSnapshot {
        try await withDomain("resolve \(uuid)") { domain throws(VirtError) in
            let state = try domain.state()
            let persistent = try domain.isPersistent()
            let runState = DomainSnapshot.RunState(state.state)
            let identity = DomainIdentity(name: domain.name, uuid: domain.uuid)
            guard runState == .running || runState == .paused else {
                // A domain that is not running has no live definition to read; nothing to do.
                return DomainSnapshot(
                    identity: identity, state: runState, isPersistent: persistent, drives: [],
                    contextMetadata: nil, appliedMetadata: nil)
            }
            let drives = try domain.cdroms().map(ContextDrive.init)
            let context = try domain.metadata(namespace: ContextMetadata.namespaceURI, impact: .live)
            let applied = try domain.metadata(namespace: AppliedMetadata.namespaceURI, impact: .live)
            return DomainSnapshot(
                identity: identity, state: runState, isPersistent: persistent, drives: drives,
                contextMetadata: context, appliedMetadata: applied)
        }
    }

    func persistentDrives() async throws(HypervisorError) -> [ContextDrive] {
        try await withDomain("read the persistent definition") { domain throws(VirtError) in
            try domain.cdroms(inactive: true).map(ContextDrive.init)
        }
    }

    func changeMedia(drive: ContextDrive, to source: String?, scope: ChangeScope) async throws(HypervisorError) {
        let xml = CDROMDevice(drive).xml(source: source)
        // Forced on the live domain: a Linux guest locks the drive door while the disc is mounted,
        // and an unforced change then asks the guest to eject, waits 5 s and fails ("timed out
        // waiting to open tray"). Forcing opens the tray regardless; the guest sees the new disc.
        let impact = DomainModificationImpact(scope).union(scope.contains(.live) ? .force : [])
        try await withDomain("change media of \(drive.target) (\(scope))") { domain throws(VirtError) in
            try domain.updateDevice(xml: xml, impact: impact)
        }
    }

    /// Reads the live definition: when libvirt records the drive's tray open, opens it in QEMU
    /// (``Domain/openTrayInQEMU(deviceID:)``, through libvirt's monitor passthrough). QEMU
    /// reports the open, libvirt's record stays open and is right again, and the next media
    /// change finds the tray as libvirt thinks it is.
    func reopenTray(_ drive: ContextDrive) async throws(HypervisorError) -> String? {
        try await withDomain("reopen the tray of \(drive.target)") { domain throws(VirtError) -> String? in
            guard let live = try domain.cdroms().first(where: { $0.target == drive.target }), live.tray == "open",
                let alias = live.alias
            else { return nil }
            try domain.openTrayInQEMU(deviceID: alias)
            return
                "libvirt's record was stale (a reset of the drive by the guest shuts the tray without a tray event); "
                + "opened it with QEMU's blockdev-open-tray on \(alias) through libvirt "
                + "(libvirt marks the domain tainted: custom-monitor)"
        }
    }

    func detachDrive(_ drive: ContextDrive, scope: ChangeScope) async throws(HypervisorError) {
        let xml = CDROMDevice(drive).xml(source: drive.source)
        try await withDomain("detach \(drive.target) (\(scope))") { domain throws(VirtError) in
            try domain.detachDevice(xml: xml, impact: DomainModificationImpact(scope))
        }
    }

    func attachDrive(_ drive: ContextDrive, source: String?, scope: ChangeScope) async throws(HypervisorError) {
        let xml = CDROMDevice(drive).xml(source: source)
        try await withDomain("attach \(drive.target) (\(scope))") { domain throws(VirtError) in
            try domain.attachDevice(xml: xml, impact: DomainModificationImpact(scope))
        }
    }

    func setAppliedMetadata(_ xml: String, scope: ChangeScope) async throws(HypervisorError) {
        try await withDomain("record applied state (\(scope))") { domain throws(VirtError) in
            try domain.setMetadata(
                xml, key: LibvirtHypervisor.appliedKey, namespace: AppliedMetadata.namespaceURI,
                impact: DomainModificationImpact(scope))
        }
    }
}
