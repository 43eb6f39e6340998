import Foundation
import Virt
import XMLSafety

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The elements of a document as libxml2 (through Foundation's streaming `XMLParser`) reads them,
/// to check ``HookXMLScanner``'s reading before a rewrite is trusted, and the rewritten document
/// after.
///
/// `XMLParser` rather than `XMLDocument`: the check needs only the sequence of elements, and the
/// streaming parser does not leak. Entities are never resolved; namespaces are not processed, so
/// names are compared as written.
struct HookXMLParserCheck {
    /// One element: its qualified name and its attributes other than namespace declarations.
    struct Element: Sendable, Hashable {
        /// The qualified name as written.
        var name: String
        /// Attributes without `xmlns` and `xmlns:*` (libxml2 reports those apart).
        var attributes: [String: String]
    }

    /// A document libxml2 refused.
    struct Failure: Error, Sendable, CustomStringConvertible {
        /// The line libxml2 stopped at.
        var line: Int
        /// libxml2's complaint.
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    /// The elements of `bytes` in document order.
    /// - Throws: ``Failure`` when libxml2 finds the document malformed.
    static func elements(of bytes: [UInt8]) throws(Failure) -> [Element] {
        let collector = Collector()
        let parser = XMLParser(data: Data(XMLParserSafety.sanitized(bytes))) // see XMLParserSafety
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        parser.shouldReportNamespacePrefixes = false
        parser.delegate = collector
        guard parser.parse() else {
            let message = parser.parserError.map { "\($0.localizedDescription)" } ?? "malformed XML"
            throw Failure(line: parser.lineNumber, message: message)
        }
        return collector.elements
    }

    /// The same view of the scanner's elements, for comparison.
    static func elements(of scanned: [HookXMLElement]) -> [Element] {
        scanned.map { element in
            var attributes: [String: String] = [:]
            for attribute in element.attributes where !isNamespaceDeclaration(attribute.name) {
                attributes[attribute.name] = attribute.value
            }
            return Element(name: element.name, attributes: attributes)
        }
    }

    static func isNamespaceDeclaration(_ name: String) -> Bool {
        name == "xmlns" || name.hasPrefix("xmlns:")
    }

    /// The index of the first element where two readings differ, or `nil` when they agree.
    static func firstDifference(_ a: [Element], _ b: [Element]) -> Int? {
        for index in 0..<min(a.count, b.count) where a[index] != b[index] { return index }
        return a.count == b.count ? nil : min(a.count, b.count)
    }
}

/// Collects start tags. Only used on the thread that calls `parse()`.
private final class Collector: NSObject, XMLParserDelegate {
    var elements: [HookXMLParserCheck.Element] = []

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        let filtered = attributes.filter { !HookXMLParserCheck.isNamespaceDeclaration($0.key) }
        elements.append(.init(name: qualifiedName ?? name, attributes: filtered))
    }
}
