import Crypto
import Foundation
import Synchronization
import XMLSafety

#if canImport(FoundationXML)
    import FoundationXML
#endif

// MARK: - XMLTree

/// One element of a small XML document, as ``XMLTree/parse(_:limits:)`` built it.
struct XMLTreeElement {
    /// The local name (without prefix).
    var localName: String
    /// The namespace URI, empty for none.
    var namespaceURI: String
    /// Attributes by qualified name; namespace declarations are left out.
    var attributes: [String: String]
    /// Child elements in document order.
    var children: [XMLTreeElement] = []
    /// All character data directly inside this element (text and CDATA), concatenated.
    var text: String = ""
    /// The line of the start tag (1-based).
    var line: Int
}

/// Builds an ``XMLTreeElement`` tree from untrusted text with Foundation's `XMLParser`.
///
/// `XMLDocument` is not used: it leaks about 19 KB per parse on Linux. Before parsing, the text is
/// checked for size and NUL bytes, and its prolog for a DOCTYPE: DTDs are refused outright, so no
/// entity is ever declared or expanded. External entities are not resolved. Depth and element
/// count are capped while parsing.
enum XMLTree {
    /// Why a document was refused.
    struct Failure: Error, Sendable {
        /// The kind of problem.
        var code: ContextError.Code
        /// What is wrong.
        var message: String
    }

    /// Caps applied while building a tree.
    struct Caps: Hashable {
        /// Largest document in UTF-8 bytes.
        var maxBytes: Int
        /// Deepest nesting (the root is depth 1).
        var maxDepth: Int
        /// Most elements in the document.
        var maxElements: Int
    }

    /// Parses a whole document.
    /// - Parameters:
    ///   - xml: The document.
    ///   - caps: Size, depth and count caps.
    /// - Returns: The root element, or why the document was refused.
    static func parse(_ xml: String, caps: Caps) -> Result<XMLTreeElement, Failure> {
        let bytes = Array(xml.utf8)
        guard bytes.count <= caps.maxBytes else {
            return .failure(
                Failure(
                    code: .limitExceeded,
                    message: "metadata is \(bytes.count) bytes, more than the limit of \(caps.maxBytes)"))
        }
        if bytes.contains(0) {
            return .failure(Failure(code: .malformedXML, message: "metadata contains a NUL byte"))
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return .failure(Failure(code: .malformedXML, message: "not well-formed XML: the document is empty"))
        }
        if let failure = checkProlog(bytes) {
            return .failure(failure)
        }
        let key = FailureKey(digest: Array(SHA256.hash(data: bytes)), caps: caps)
        if let known = knownFailures.withLock({ $0[key] }) {
            return .failure(known)
        }
        let result = parseWithFoundation(bytes, caps: caps)
        if case .failure(let failure) = result {
            knownFailures.withLock { known in
                if known.count >= maxKnownFailures { known.removeAll(keepingCapacity: true) }
                known[key] = failure
            }
        }
        return result
    }

    /// A document refused by the parser, and the caps it was refused under.
    struct FailureKey: Hashable {
        var digest: [UInt8]
        var caps: Caps
    }

    /// Documents `XMLParser` refused, with why: swift-corelibs-foundation's `XMLParser` leaks about
    /// 216 bytes (an `NSError`) for every document it refuses (found by the fuzzer under
    /// LeakSanitizer), and the daemon parses a domain's metadata on every run of it, so a domain
    /// with malformed metadata would leak on every periodic reconcile. Remembered by SHA-256 and
    /// caps, a refused document is parsed once; at most ``maxKnownFailures`` are kept.
    private static let knownFailures = Mutex<[FailureKey: Failure]>([:])
    static let maxKnownFailures = 1024
    /// Counts the documents `XMLParser` parses in the current task, when set (for tests: a
    /// remembered failure is not parsed again).
    @TaskLocal static var parseCounter: ParseCounter?

    /// A count of `XMLParser` runs (see ``parseCounter``).
    final class ParseCounter: Sendable {
        let value = Atomic<Int>(0)
    }

    private static func parseWithFoundation(_ bytes: [UInt8], caps: Caps) -> Result<XMLTreeElement, Failure> {
        parseCounter?.value.add(1, ordering: .relaxed)
        let parser = XMLParser(data: Data(XMLParserSafety.sanitized(bytes))) // see XMLParserSafety
        parser.shouldProcessNamespaces = true
        parser.shouldReportNamespacePrefixes = false
        parser.shouldResolveExternalEntities = false
        let builder = TreeBuilder(caps: caps)
        parser.delegate = builder
        let ok = parser.parse()
        if let failure = builder.failure {
            return .failure(failure)
        }
        guard ok, let root = builder.root else {
            let code = (parser.parserError as NSError?)?.code ?? 0
            return .failure(
                Failure(
                    code: .malformedXML,
                    message:
                        "not well-formed XML: \(describe(xmlErrorCode: code)) at line \(parser.lineNumber), column \(parser.columnNumber)"
                )
            )
        }
        return .success(root)
    }

    /// Refuses a DOCTYPE (and any other `<!` declaration) before the root element.
    ///
    /// A DTD can only appear in the prolog, so looking there is enough; `<!DOCTYPE` inside CDATA
    /// further on is content, not markup.
    static func checkProlog(_ bytes: [UInt8]) -> Failure? {
        var i = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        func hasPrefix(_ literal: String, at index: Int) -> Bool {
            let lit = Array(literal.utf8)
            guard index + lit.count <= bytes.count else { return false }
            for (offset, expected) in lit.enumerated() {
                var byte = bytes[index + offset]
                if byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") { byte -= 32 }
                var want = expected
                if want >= UInt8(ascii: "a") && want <= UInt8(ascii: "z") { want -= 32 }
                if byte != want { return false }
            }
            return true
        }
        func skip(past terminator: String, from index: Int) -> Int? {
            let term = Array(terminator.utf8)
            var j = index
            while j + term.count <= bytes.count {
                if Array(bytes[j..<(j + term.count)]) == term { return j + term.count }
                j += 1
            }
            return nil
        }
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                i += 1
            case UInt8(ascii: "<"):
                if hasPrefix("<?", at: i) {
                    guard let next = skip(past: "?>", from: i + 2) else { return nil }
                    i = next
                } else if hasPrefix("<!--", at: i) {
                    guard let next = skip(past: "-->", from: i + 4) else { return nil }
                    i = next
                } else if hasPrefix("<!DOCTYPE", at: i) {
                    return Failure(
                        code: .forbiddenDTD, message: "a DOCTYPE is not allowed (no DTDs, no entity declarations)")
                } else if hasPrefix("<!", at: i) {
                    return Failure(
                        code: .forbiddenDTD, message: "markup declarations are not allowed before the root element")
                } else {
                    return nil
                }
            default:
                return nil
            }
        }
        return nil
    }

    /// Words for the libxml2 error codes that bad metadata produces most.
    static func describe(xmlErrorCode code: Int) -> String {
        switch code {
        case 4: "the document is empty"
        case 5: "extra content after the root element"
        case 9: "a character that XML does not allow"
        case 26: "an undeclared entity reference (only &amp; &lt; &gt; &quot; &apos; and character references work)"
        case 38, 39, 40, 41: "a malformed attribute"
        case 42: "an attribute given twice"
        case 63, 64, 65, 73: "a malformed tag"
        case 76: "an end tag that does not match its start tag"
        case 77: "the document ends inside an element"
        case 99: "an undefined namespace prefix"
        default: "XML error \(code)"
        }
    }
}

// MARK: - TreeBuilder

/// The `XMLParser` delegate that builds the tree and enforces the caps.
///
/// - Important: Used by exactly one synchronous `parse()` call on one thread.
private final class TreeBuilder: NSObject, XMLParserDelegate {
    let caps: XMLTree.Caps
    var stack: [XMLTreeElement] = []
    var root: XMLTreeElement?
    var failure: XMLTree.Failure?
    var elements = 0

    init(caps: XMLTree.Caps) {
        self.caps = caps
    }

    private func fail(_ parser: XMLParser, _ code: ContextError.Code, _ message: String) {
        if failure == nil {
            failure = XMLTree.Failure(code: code, message: message)
        }
        parser.abortParsing()
    }

    func parser(
        _ parser: XMLParser,
        didStartElement elementName: String,
        namespaceURI: String?,
        qualifiedName qName: String?,
        attributes attributeDict: [String: String] = [:]
    ) {
        guard failure == nil else { return }
        elements += 1
        if elements > caps.maxElements {
            fail(parser, .limitExceeded, "metadata has more than \(caps.maxElements) elements")
            return
        }
        if stack.count + 1 > caps.maxDepth {
            fail(
                parser, .limitExceeded,
                "elements are nested deeper than \(caps.maxDepth) levels (line \(parser.lineNumber))")
            return
        }
        let attributes = attributeDict.filter { key, _ in key != "xmlns" && !key.hasPrefix("xmlns:") }
        stack.append(
            XMLTreeElement(
                localName: elementName, namespaceURI: namespaceURI ?? "", attributes: attributes,
                line: parser.lineNumber)
        )
    }

    func parser(
        _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?
    ) {
        guard failure == nil, let element = stack.popLast() else { return }
        if stack.isEmpty {
            root = element
        } else {
            stack[stack.count - 1].children.append(element)
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        guard failure == nil, !stack.isEmpty else { return }
        stack[stack.count - 1].text += string
    }

    func parser(_ parser: XMLParser, foundIgnorableWhitespace whitespaceString: String) {
        self.parser(parser, foundCharacters: whitespaceString)
    }

    func parser(_ parser: XMLParser, foundCDATA cdata: Data) {
        guard failure == nil, !stack.isEmpty else { return }
        guard let text = String(data: cdata, encoding: .utf8) else {
            fail(parser, .malformedXML, "CDATA section is not valid UTF-8")
            return
        }
        stack[stack.count - 1].text += text
    }

    func parser(_ parser: XMLParser, foundInternalEntityDeclarationWithName name: String, value: String?) {
        fail(parser, .forbiddenDTD, "entity declarations are not allowed")
    }

    func parser(
        _ parser: XMLParser, foundExternalEntityDeclarationWithName name: String, publicID: String?, systemID: String?
    ) {
        fail(parser, .forbiddenDTD, "entity declarations are not allowed")
    }

    /// `XMLParser` asks here for every entity reference it does not know, declared or not.
    func parser(_ parser: XMLParser, resolveExternalEntityName name: String, systemID: String?) -> Data? {
        fail(
            parser,
            .malformedXML,
            "undeclared entity reference &\(name); at line \(parser.lineNumber) (only &amp; &lt; &gt; &quot; &apos; and character references work)"
        )
        return nil
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        guard failure == nil else { return }
        let code = (parseError as NSError).code
        fail(
            parser,
            .malformedXML,
            "not well-formed XML: \(XMLTree.describe(xmlErrorCode: code)) at line \(parser.lineNumber), column \(parser.columnNumber)"
        )
    }

    func parser(_ parser: XMLParser, validationErrorOccurred validationError: Error) {
        self.parser(parser, parseErrorOccurred: validationError)
    }
}
