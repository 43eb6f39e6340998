internal import XML

/// A CD-ROM device of a domain, parsed from its XML.
public struct CDROMDevice: Sendable, Hashable {
    /// The disk type, `file` for an image file (also `block`, `network`, ...).
    public var diskType: String
    /// The target device name in the guest's bus namespace, e.g. `sda`, `hdc`.
    public var target: String
    /// The bus: `sata`, `ide`, `scsi`, `usb`, ...
    public var bus: String
    /// The image path, or `nil` when the drive is empty.
    public var sourceFile: String?
    /// The source's `startupPolicy` (`optional` lets a domain start or migrate without the file).
    public var startupPolicy: String?
    /// The device alias, e.g. `sata0-0-0` or a user alias `ua-…`; live XML only.
    public var alias: String?
    /// Whether the disk is read-only (`<readonly/>`); CD-ROMs always are.
    public var isReadOnly: Bool
    /// The tray state reported in live XML (`open` or `closed`), if any.
    public var tray: String?
    /// The `<driver>` element's `name` and `type` attributes, e.g. `qemu` and `raw`.
    public var driverName: String?
    /// The image format, e.g. `raw`.
    public var driverType: String?
    /// The `<address>` element's attributes (for SCSI: controller, bus, target, unit).
    public var address: [String: String]

    /// Creates a device description.
    public init(
        diskType: String = "file", target: String, bus: String, sourceFile: String? = nil,
        startupPolicy: String? = nil, alias: String? = nil, isReadOnly: Bool = true, tray: String? = nil,
        driverName: String? = "qemu", driverType: String? = "raw", address: [String: String] = [:]
    ) {
        self.diskType = diskType
        self.target = target
        self.bus = bus
        self.sourceFile = sourceFile
        self.startupPolicy = startupPolicy
        self.alias = alias
        self.isReadOnly = isReadOnly
        self.tray = tray
        self.driverName = driverName
        self.driverType = driverType
        self.address = address
    }

    /// The device XML for an update or attach, with `source` as the new image (nil: empty drive).
    ///
    /// Keeps target, bus, driver, address and user alias so libvirt matches the same device.
    /// - Parameters:
    ///   - source: the new image path, or `nil` to eject.
    ///   - startupPolicy: the source's startup policy; defaults to the current one.
    public func xml(source: String?, startupPolicy: String?? = .none) -> String {
        let policy = startupPolicy ?? self.startupPolicy
        var xml = "<disk type='\(XMLEscaping.attribute(diskType))' device='cdrom'>"
        if driverName != nil || driverType != nil {
            xml += "<driver"
            if let driverName { xml += " name='\(XMLEscaping.attribute(driverName))'" }
            if let driverType { xml += " type='\(XMLEscaping.attribute(driverType))'" }
            xml += "/>"
        }
        if let source {
            xml += "<source file='\(XMLEscaping.attribute(source))'"
            if let policy { xml += " startupPolicy='\(XMLEscaping.attribute(policy))'" }
            xml += "/>"
        }
        xml += "<target dev='\(XMLEscaping.attribute(target))' bus='\(XMLEscaping.attribute(bus))'/>"
        if isReadOnly { xml += "<readonly/>" }
        if let alias, alias.hasPrefix("ua-") { xml += "<alias name='\(XMLEscaping.attribute(alias))'/>" }
        if !address.isEmpty {
            xml += "<address"
            for key in address.keys.sorted() { xml += " \(key)='\(XMLEscaping.attribute(address[key]!))'" }
            xml += "/>"
        }
        xml += "</disk>"
        return xml
    }
}
