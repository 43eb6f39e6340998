/// What the pipeline needs from the hypervisor.
///
/// The daemon implements it over libvirt; unit tests use an in-memory fake. Every method may
/// block on an RPC, so implementations run their work off the cooperative thread pool.
public protocol Hypervisor: Sendable {
    /// A session on one domain for one pipeline run (see ``DomainSession``): the run's calls
    /// go through it. The default forwards to the per-domain methods below.
    /// - Throws: ``HypervisorError`` when the session cannot be opened (e.g. not connected).
    func session(for uuid: String) async throws(HypervisorError) -> any DomainSession

    /// Everything the pipeline reads about one domain, in one consistent look.
    /// - Throws: ``HypervisorError``; ``HypervisorError/isGone`` when the domain does not exist.
    func snapshot(of uuid: String) async throws(HypervisorError) -> DomainSnapshot

    /// The CD-ROM drives of a domain's persistent definition (the live ones are in ``snapshot(of:)``).
    /// - Throws: ``HypervisorError``; ``HypervisorError/isGone`` when the domain does not exist.
    func persistentDrives(of domain: DomainIdentity) async throws(HypervisorError) -> [ContextDrive]

    /// The running and paused domains on this host.
    func activeDomains() async throws(HypervisorError) -> [DomainIdentity]

    /// Changes the media of a CD-ROM (a new `<source>`; `nil` ejects).
    func changeMedia(
        of domain: DomainIdentity, drive: ContextDrive, to source: String?, scope: ChangeScope
    ) async throws(HypervisorError)

    /// Puts right a tray the hypervisor's manager records as open while the emulator has it shut,
    /// so that the next media change of `drive` can work: opens it in the emulator.
    ///
    /// libvirt 9.0 opens a tray for a media change only when it records it shut, and QEMU shuts a
    /// tray without telling anyone when the guest resets the drive (as a guest does while it
    /// boots); from then on every media change fails ("Tray of device ... is not open").
    /// - Returns: what was done, for the run's warning, when the tray was recorded open and has
    ///   been opened now; `nil` when it was not recorded open (the refusal has another cause:
    ///   nothing done).
    func reopenTray(of domain: DomainIdentity, drive: ContextDrive) async throws(HypervisorError) -> String?

    /// Hot-unplugs a CD-ROM device (SCSI only).
    func detachDrive(of domain: DomainIdentity, drive: ContextDrive, scope: ChangeScope) async throws(HypervisorError)

    /// Hot-plugs a CD-ROM device like `drive` with `source` inserted (SCSI only).
    func attachDrive(
        of domain: DomainIdentity, drive: ContextDrive, source: String?, scope: ChangeScope
    ) async throws(HypervisorError)

    /// Records the applied state in the domain's metadata (its own namespace).
    func setAppliedMetadata(_ xml: String, of domain: DomainIdentity, scope: ChangeScope) async throws(HypervisorError)

    /// The UUIDs of every domain this host knows, running or only defined.
    func knownDomains() async throws(HypervisorError) -> Set<String>

    /// Every CD-ROM source path named by any domain on this host, live or persistent.
    ///
    /// Used to collect unreferenced images: a path in this set is never removed.
    func referencedSources() async throws(HypervisorError) -> Set<String>
}

/// Which definitions of a domain a change affects.
public struct ChangeScope: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The running domain.
    public static let live = ChangeScope(rawValue: 1)
    /// The persistent definition (what the domain starts with next time).
    public static let config = ChangeScope(rawValue: 2)
    public var description: String {
        [contains(.live) ? "live" : nil, contains(.config) ? "config" : nil].compactMap { $0 }.joined(separator: "+")
    }
}

/// A domain as the pipeline sees it at the resolve phase.
public struct DomainSnapshot: Sendable, Hashable {
    /// The domain's run state.
    public enum RunState: Sendable, Hashable {
        case running, paused, shutOff, other
    }
    /// Name and UUID.
    public var identity: DomainIdentity
    /// Running, paused, ...
    public var state: RunState
    /// Whether it has a persistent definition (then changes go to live and config).
    public var isPersistent: Bool
    /// The CD-ROM drives of the live definition.
    public var drives: [ContextDrive]
    /// The context specification element (``ContextMetadata/namespaceURI``), live definition.
    public var contextMetadata: String?
    /// The applied-state element (``AppliedMetadata/namespaceURI``), live definition.
    public var appliedMetadata: String?

    /// Creates a snapshot.
    public init(
        identity: DomainIdentity, state: RunState, isPersistent: Bool, drives: [ContextDrive],
        contextMetadata: String?, appliedMetadata: String?
    ) {
        self.identity = identity
        self.state = state
        self.isPersistent = isPersistent
        self.drives = drives
        self.contextMetadata = contextMetadata
        self.appliedMetadata = appliedMetadata
    }
}

/// A CD-ROM drive of a domain: enough to address it and to re-create its XML.
public struct ContextDrive: Sendable, Hashable {
    /// Target device name, e.g. `sda`.
    public var target: String
    /// Bus: `sata`, `ide`, `scsi`, ...
    public var bus: String
    /// The inserted image, or `nil` when empty.
    public var source: String?
    /// Everything else the hypervisor layer needs to rebuild the device, opaque to the pipeline.
    public var handle: DriveHandle

    /// Creates a drive description.
    public init(target: String, bus: String, source: String?, handle: DriveHandle = [:]) {
        self.target = target
        self.bus = bus
        self.source = source
        self.handle = handle
    }
}

/// What the hypervisor layer keeps about a drive to address it and rebuild it (for libvirt: the
/// alias, driver, address and startup policy of the `<disk>`). The pipeline carries it along and
/// never looks inside.
public struct DriveHandle: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    private var fields: [String: String]

    /// A handle holding `fields`.
    public init(_ fields: [String: String]) {
        self.fields = fields
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// The value the hypervisor layer stored under `key`.
    public subscript(key: String) -> String? { fields[key] }

    /// Every stored field (for the hypervisor layer that made the handle).
    public var allFields: [String: String] { fields }
}

/// A failure of a hypervisor operation.
public struct HypervisorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Kind: String, Sendable, Hashable {
        /// The domain does not exist (any more) on this host.
        case noDomain
        /// Retry later: connection lost, timeout, busy job.
        case transient
        /// The driver or bus cannot do it.
        case unsupported
        /// Anything else, not worth retrying.
        case permanent
    }
    /// The kind.
    public var kind: Kind
    /// The operation, e.g. `changeMedia(live)`.
    public var operation: String
    /// The hypervisor's message.
    public var message: String
    /// The hypervisor's numeric error code, when it has one (for libvirt, `virErrorNumber`).
    public var code: Int32?
    /// True when a media step was refused because the drive's tray was shut (or would not open).
    /// Between the steps of a media change (open the tray, remove, insert, close) the guest may
    /// shut the tray again; while it keeps doing so, every media change fails. A SCSI drive can
    /// be replaced instead (detach and attach), which does not use the tray.
    public var refusedByTray: Bool

    /// Creates an error.
    public init(_ kind: Kind, operation: String, message: String, code: Int32? = nil, refusedByTray: Bool = false) {
        self.kind = kind
        self.operation = operation
        self.message = message
        self.code = code
        self.refusedByTray = refusedByTray
    }

    /// True when the domain is gone.
    public var isGone: Bool { kind == .noDomain }
    /// True when a retry may succeed.
    public var isTransient: Bool { kind == .transient }

    public var description: String {
        "\(operation): \(message)" + (code.map { " (hypervisor error \($0))" } ?? "")
    }
}
