internal import CLibvirt

/// A libvirt domain (a VM) on one connection.
///
/// The corresponding C type is `virDomainPtr`; it is freed in `deinit`. The name and UUID are
/// read once, locally (no RPC), when the object is made.
///
/// `@unchecked Sendable`: the handle is only passed to libvirt, whose domain objects are safe to
/// use from several threads; the stored properties are immutable. Its calls share the
/// connection's one-call-at-a-time gate (see ``Connection``).
///
/// - Important: Every method except ``name`` and ``uuid`` makes a blocking call; async callers
///   run them off the cooperative thread pool.
public final class Domain: @unchecked Sendable {
    let handle: OpaquePointer
    /// The connection this domain was looked up on; kept alive as long as the domain.
    public let connection: Connection
    /// The domain's name.
    public let name: String
    /// The domain's UUID, lower-case canonical form.
    public let uuid: String

    init(adopting handle: OpaquePointer, connection: Connection) {
        self.handle = handle
        self.connection = connection
        self.name = virDomainGetName(handle).map { String(cString: $0) } ?? ""
        self.uuid = Domain.uuidString(handle)
    }

    deinit {
        virDomainFree(handle)
    }

    static func uuidString(_ handle: OpaquePointer) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(VIR_UUID_STRING_BUFLEN)) { buffer in
            guard virDomainGetUUIDString(handle, buffer.baseAddress) == 0 else { return "" }
            return String(cString: buffer.baseAddress!).lowercased()
        }
    }

    /// `LibvirtCall.int` through the connection's call gate: one call at a time per connection.
    @discardableResult
    private func int(_ operation: String, _ body: () -> Int32) throws(VirtError) -> Int32 {
        try connection.gate.run { () throws(VirtError) in try LibvirtCall.int(operation, body) }
    }

    /// `LibvirtCall.string` through the connection's call gate: one call at a time per connection.
    private func string(_ operation: String, _ body: () -> UnsafeMutablePointer<CChar>?) throws(VirtError) -> String {
        try connection.gate.run { () throws(VirtError) in try LibvirtCall.string(operation, body) }
    }

    /// A value snapshot of the domain's identity.
    public var reference: DomainReference { DomainReference(name: name, uuid: uuid) }

    // MARK: - State

    /// The domain's state and the reason for it.
    ///
    /// The corresponding C function is `virDomainGetState`.
    public func state() throws(VirtError) -> DomainStateInfo {
        var state: Int32 = 0
        var reason: Int32 = 0
        try int("virDomainGetState(\(name))") { virDomainGetState(handle, &state, &reason, 0) }
        return DomainStateInfo(state: DomainState(rawValue: state) ?? .noState, reason: reason)
    }

    /// Whether the domain is running or paused.
    ///
    /// The corresponding C function is `virDomainIsActive`.
    public func isActive() throws(VirtError) -> Bool {
        try int("virDomainIsActive(\(name))") { virDomainIsActive(handle) } == 1
    }

    /// Whether the domain has a persistent definition.
    ///
    /// The corresponding C function is `virDomainIsPersistent`.
    public func isPersistent() throws(VirtError) -> Bool {
        try int("virDomainIsPersistent(\(name))") { virDomainIsPersistent(handle) } == 1
    }

    /// The domain's XML description.
    ///
    /// The corresponding C function is `virDomainGetXMLDesc`.
    /// - Parameter flags: e.g. ``DomainXMLFlags/inactive`` for the persistent definition.
    public func xmlDescription(_ flags: DomainXMLFlags = []) throws(VirtError) -> String {
        try string("virDomainGetXMLDesc(\(name))") { virDomainGetXMLDesc(handle, flags.rawValue) }
    }

    /// The CD-ROM devices in the live (or, with `inactive`, the persistent) definition.
    public func cdroms(inactive: Bool = false) throws(VirtError) -> [CDROMDevice] {
        let xml = try xmlDescription(inactive ? .inactive : [])
        do {
            return try DomainXML.cdroms(in: xml)
        } catch {
            throw VirtError(code: .xmlError, message: "\(error)", operation: "parse domain XML of \(name)")
        }
    }

    // MARK: - Lifecycle

    /// Starts a defined domain.
    ///
    /// The corresponding C function is `virDomainCreateWithFlags`.
    public func start(paused: Bool = false) throws(VirtError) {
        let flags = paused ? UInt32(VIR_DOMAIN_START_PAUSED.rawValue) : 0
        try int("virDomainCreateWithFlags(\(name))") { virDomainCreateWithFlags(handle, flags) }
    }

    /// Pauses the domain's vCPUs. The corresponding C function is `virDomainSuspend`.
    public func suspend() throws(VirtError) {
        try int("virDomainSuspend(\(name))") { virDomainSuspend(handle) }
    }

    /// Resumes a paused domain. The corresponding C function is `virDomainResume`.
    public func resume() throws(VirtError) {
        try int("virDomainResume(\(name))") { virDomainResume(handle) }
    }

    /// Stops the domain at once. The corresponding C function is `virDomainDestroy`.
    public func destroy() throws(VirtError) {
        try int("virDomainDestroy(\(name))") { virDomainDestroy(handle) }
    }

    /// Removes the persistent definition. The corresponding C function is `virDomainUndefineFlags`.
    public func undefine() throws(VirtError) {
        let flags: UInt32 = 0
        try int("virDomainUndefineFlags(\(name))") { virDomainUndefineFlags(handle, flags) }
    }

    // MARK: - Metadata

    /// The domain's metadata element in a custom namespace, or `nil` when there is none.
    ///
    /// The corresponding C function is `virDomainGetMetadata` with `VIR_DOMAIN_METADATA_ELEMENT`.
    /// - Parameters:
    ///   - namespace: the namespace URI, e.g. `urn:recontextd:context:1`.
    ///   - impact: ``DomainModificationImpact/live`` or ``DomainModificationImpact/config``;
    ///     ``DomainModificationImpact/current`` (empty) reads the current state.
    public func metadata(namespace: String, impact: DomainModificationImpact = []) throws(VirtError) -> String? {
        do {
            return try string("virDomainGetMetadata(\(name))") {
                virDomainGetMetadata(handle, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), namespace, impact.rawValue)
            }
        } catch let error where error.code == .noDomainMetadata {
            return nil
        }
    }

    /// Sets (or, with `nil`, removes) the domain's metadata element in a custom namespace.
    ///
    /// Fires a METADATA_CHANGE event. The corresponding C function is `virDomainSetMetadata`.
    /// - Parameters:
    ///   - xml: a single XML element; libvirt puts it in `namespace` with the prefix `key`.
    ///   - key: the namespace prefix, e.g. `recontext`.
    ///   - namespace: the namespace URI.
    ///   - impact: live, config, or both.
    public func setMetadata(
        _ xml: String?,
        key: String,
        namespace: String,
        impact: DomainModificationImpact
    ) throws(VirtError) {
        try int("virDomainSetMetadata(\(name))") {
            virDomainSetMetadata(
                handle, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), xml, xml == nil ? nil : key, namespace,
                impact.rawValue)
        }
    }

    // MARK: - Devices

    /// Changes a device in place, e.g. the media of a CD-ROM (a new `<source file=…>`).
    ///
    /// The corresponding C function is `virDomainUpdateDeviceFlags`.
    /// - Parameters:
    ///   - xml: the device's full XML with the new values.
    ///   - impact: live, config, or both; ``DomainModificationImpact/force`` forces an eject.
    public func updateDevice(xml: String, impact: DomainModificationImpact) throws(VirtError) {
        try int("virDomainUpdateDeviceFlags(\(name))") {
            virDomainUpdateDeviceFlags(handle, xml, impact.rawValue)
        }
    }

    /// Hot-plugs a device. The corresponding C function is `virDomainAttachDeviceFlags`.
    public func attachDevice(xml: String, impact: DomainModificationImpact) throws(VirtError) {
        try int("virDomainAttachDeviceFlags(\(name))") {
            virDomainAttachDeviceFlags(handle, xml, impact.rawValue)
        }
    }

    /// Hot-unplugs a device. The corresponding C function is `virDomainDetachDeviceFlags`.
    ///
    /// For live detaches libvirt waits (a few seconds) for the guest to release the device; the
    /// DEVICE_REMOVED event confirms it.
    public func detachDevice(xml: String, impact: DomainModificationImpact) throws(VirtError) {
        try int("virDomainDetachDeviceFlags(\(name))") {
            virDomainDetachDeviceFlags(handle, xml, impact.rawValue)
        }
    }
}

/// A domain's identity, as a value.
public struct DomainReference: Sendable, Hashable, CustomStringConvertible {
    /// The domain's name.
    public var name: String
    /// The domain's UUID, lower-case canonical form.
    public var uuid: String
    /// Creates a reference.
    public init(name: String, uuid: String) {
        self.name = name
        self.uuid = uuid
    }
    public var description: String { "\(name) (\(uuid))" }
}

/// `virDomainState`.
public enum DomainState: Int32, Sendable, Hashable {
    case noState = 0
    case running, blocked, paused, shutdown, shutoff, crashed, pmSuspended
}

/// A domain's state and libvirt's numeric reason for it (`virDomainRunningReason` and friends).
public struct DomainStateInfo: Sendable, Hashable {
    /// The state.
    public var state: DomainState
    /// The reason, whose meaning depends on the state (e.g. running/1 = migrated).
    public var reason: Int32
}

/// Flags of ``Domain/xmlDescription(_:)`` (`virDomainXMLFlags`).
public struct DomainXMLFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The persistent definition rather than the live one.
    public static let inactive = DomainXMLFlags(rawValue: UInt32(VIR_DOMAIN_XML_INACTIVE.rawValue))
    /// Include security-sensitive information.
    public static let secure = DomainXMLFlags(rawValue: UInt32(VIR_DOMAIN_XML_SECURE.rawValue))
    /// The XML as it would be migrated.
    public static let migratable = DomainXMLFlags(rawValue: UInt32(VIR_DOMAIN_XML_MIGRATABLE.rawValue))
}

/// Which definition a change affects (`virDomainModificationImpact`). Empty means "current".
public struct DomainModificationImpact: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The current state: live if running, else config.
    public static let current: DomainModificationImpact = []
    /// The running domain.
    public static let live = DomainModificationImpact(rawValue: UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue))
    /// The persistent definition.
    public static let config = DomainModificationImpact(rawValue: UInt32(VIR_DOMAIN_AFFECT_CONFIG.rawValue))
    /// With device updates: force the change (e.g. eject a locked tray).
    public static let force = DomainModificationImpact(rawValue: UInt32(VIR_DOMAIN_DEVICE_MODIFY_FORCE.rawValue))
}
