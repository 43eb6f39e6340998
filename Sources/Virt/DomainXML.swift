internal import XML

/// Reads what the wrapper needs from a domain's XML description, with the ``XML`` reader
/// (libxml2: no DTD, no entities, bounded depth and size).
public enum DomainXML {
    /// A domain XML that could not be parsed.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// What went wrong, with the parser's line when known.
        public var message: String
        public var description: String { message }
    }

    /// The largest domain XML read (libvirt's are a few tens of KiB; metadata can add some).
    static let limits = XMLLimits(maxBytes: 16 << 20)

    /// The CD-ROM disks under `<devices>`, in document order.
    /// - Throws: ``ParseError`` when the XML is malformed.
    public static func cdroms(in xml: String) throws(ParseError) -> [CDROMDevice] {
        let root: XMLElement
        do {
            root = try XMLReader.parse(xml, limits: limits)
        } catch {
            throw ParseError(message: "domain XML \(error)")
        }
        return root.children(named: "devices").flatMap { devices in
            devices.children(named: "disk").filter { $0.attribute("device") == "cdrom" }.map(cdrom)
        }
    }

    /// One `<disk device='cdrom'>`; of repeated children, the last counts.
    private static func cdrom(_ disk: XMLElement) -> CDROMDevice {
        var device = CDROMDevice(
            diskType: disk.attribute("type") ?? "file", target: "", bus: "", isReadOnly: false, driverName: nil,
            driverType: nil)
        for child in disk.children {
            switch child.qualifiedName {
            case "source":
                device.sourceFile = child.attribute("file") ?? child.attribute("dev")
                device.startupPolicy = child.attribute("startupPolicy")
            case "target":
                device.target = child.attribute("dev") ?? ""
                device.bus = child.attribute("bus") ?? ""
                device.tray = child.attribute("tray")
            case "alias":
                device.alias = child.attribute("name")
            case "readonly":
                device.isReadOnly = true
            case "driver":
                device.driverName = child.attribute("name")
                device.driverType = child.attribute("type")
            case "address":
                device.address = Dictionary(
                    child.attributes.map { ($0.qualifiedName, $0.value) }, uniquingKeysWith: { _, last in last })
            default:
                break
            }
        }
        return device
    }
}
