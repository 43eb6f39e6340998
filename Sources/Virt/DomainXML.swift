import Foundation
import XMLSafety

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Reads what the wrapper needs from a domain's XML description.
///
/// Uses the streaming `XMLParser`: FoundationXML's `XMLDocument` leaks about 19 KB per parse on
/// this platform, which a long-running daemon cannot afford. Entities are never resolved.
public enum DomainXML {
    /// A domain XML that could not be parsed.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// What went wrong, with the parser's line when known.
        public var message: String
        public var description: String { message }
    }

    /// The CD-ROM disks under `<devices>`, in document order.
    /// - Throws: ``ParseError`` when the XML is malformed.
    public static func cdroms(in xml: String) throws(ParseError) -> [CDROMDevice] {
        let delegate = CDROMCollector()
        let parser = XMLParser(data: Data(XMLParserSafety.sanitized(Array(xml.utf8))))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        parser.delegate = delegate
        guard parser.parse() else {
            let message = parser.parserError.map { "\($0)" } ?? "unknown error"
            throw ParseError(message: "domain XML line \(parser.lineNumber): \(message)")
        }
        return delegate.devices
    }
}

/// Collects `<disk device='cdrom'>` elements directly below `<domain><devices>`.
private final class CDROMCollector: NSObject, XMLParserDelegate {
    var devices: [CDROMDevice] = []
    private var path: [String] = []
    private var current: CDROMDevice?

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        path.append(name)
        if path.count == 3, name == "disk", path[1] == "devices", attributes["device"] == "cdrom" {
            current = CDROMDevice(
                diskType: attributes["type"] ?? "file", target: "", bus: "", isReadOnly: false,
                driverName: nil, driverType: nil)
            return
        }
        guard path.count == 4, current != nil else { return }
        switch name {
        case "source":
            current?.sourceFile = attributes["file"] ?? attributes["dev"]
            current?.startupPolicy = attributes["startupPolicy"]
        case "target":
            current?.target = attributes["dev"] ?? ""
            current?.bus = attributes["bus"] ?? ""
            current?.tray = attributes["tray"]
        case "alias":
            current?.alias = attributes["name"]
        case "readonly":
            current?.isReadOnly = true
        case "driver":
            current?.driverName = attributes["name"]
            current?.driverType = attributes["type"]
        case "address":
            current?.address = attributes
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if path.count == 3, name == "disk", let device = current {
            devices.append(device)
            current = nil
        }
        path.removeLast()
    }
}
