// MARK: - HookXMLElement

/// One element of an XML document as ``HookXMLScanner`` found it: its name, its attributes, and
/// the bytes it spans, so that a rewrite can cut it out and copy every other byte unchanged.
struct HookXMLElement: Sendable, Hashable {
    /// The qualified name as written (`disk`, `recontext:context`).
    var name: String
    /// The attributes in document order, values decoded (entities, character references and
    /// attribute-value whitespace normalisation applied, as an XML parser reports them).
    var attributes: [Attribute]
    /// 0 for the root element.
    var depth: Int
    /// The index of the parent element, `nil` for the root.
    var parent: Int?
    /// The byte offset of the `<` that opens the start tag.
    var start: Int
    /// The byte offset just after the `>` that closes the element (its end tag, or `/>`).
    var end: Int
    /// The index of the element's last descendant; its own index when it has none. The subtree
    /// is the index range `index...lastDescendant`.
    var lastDescendant: Int
    /// The 1-based line of the start tag.
    var line: Int

    /// One attribute.
    struct Attribute: Sendable, Hashable {
        /// The qualified name as written.
        var name: String
        /// The decoded value.
        var value: String
    }

    /// The decoded value of the first attribute named `name`, or `nil`.
    func attribute(_ name: String) -> String? {
        attributes.first { $0.name == name }?.value
    }
}

// MARK: - HookXMLScanner

/// A strict lexical scanner of well-formed XML that records where each element starts and ends.
///
/// It exists so that `recontextd hook` can remove one element from libvirt's domain XML and keep
/// every other byte as libvirt wrote it (quoting, namespaces, whitespace, the metadata of other
/// tools), which a parse-and-serialise round trip does not. It is not a validating parser: the
/// hook checks its reading against libxml2's (``HookXMLParserCheck``) before trusting it.
///
/// Accepts: an optional UTF-8 byte-order mark, an XML declaration, processing instructions,
/// comments, CDATA sections, character data, one root element. Rejects with
/// ``HookXMLScanner/Failure``: a document type declaration (an internal subset can declare
/// entities and default attributes that change what the document means, which a byte-level edit
/// cannot honour; libvirt never writes one), unknown entities, mismatched or unclosed tags, `<` in
/// attribute values, more than one root, a document nesting deeper than ``maximumDepth``.
enum HookXMLScanner {
    /// Nesting deeper than this is refused (libvirt's domain XML nests about 8 levels).
    static let maximumDepth = 256

    /// Why a document could not be scanned, with the 1-based line.
    struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        /// The line where the problem was found.
        var line: Int
        /// What is wrong.
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    /// Scans `bytes` and returns its elements in document order (index 0 is the root).
    /// - Throws: ``Failure`` when the bytes are not a well-formed document this scanner accepts.
    static func scan(_ bytes: [UInt8]) throws(Failure) -> [HookXMLElement] {
        var scanner = State(bytes: bytes)
        try scanner.run()
        return scanner.elements
    }

    // MARK: - State

    private struct State {
        let bytes: [UInt8]
        var position = 0
        var line = 1
        var elements: [HookXMLElement] = []
        var stack: [Int] = []
        var rootClosed = false

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        mutating func run() throws(Failure) {
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
            while position < bytes.count {
                let byte = bytes[position]
                if byte != UInt8(ascii: "<") {
                    try characterData()
                    continue
                }
                if matches("<?") {
                    try skip(past: "?>", what: "processing instruction")
                } else if matches("<!--") {
                    try skip(past: "-->", what: "comment")
                } else if matches("<![CDATA[") {
                    guard !stack.isEmpty else { throw failure("CDATA section outside the root element") }
                    try skip(past: "]]>", what: "CDATA section")
                } else if matches("<!") {
                    throw failure("a document type declaration or other <! markup is not accepted")
                } else if matches("</") {
                    try endTag()
                } else {
                    try startTag()
                }
            }
            guard !stack.isEmpty || rootClosed else { throw failure("no root element") }
            if let open = stack.last {
                throw Failure(
                    line: line, message: "element <\(elements[open].name)> (line \(elements[open].line)) is not closed")
            }
        }

        // MARK: Pieces

        /// Text between tags: only whitespace outside the root.
        mutating func characterData() throws(Failure) {
            while position < bytes.count, bytes[position] != UInt8(ascii: "<") {
                let byte = bytes[position]
                if stack.isEmpty, !isWhitespace(byte) { throw failure("text outside the root element") }
                if byte == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
        }

        mutating func startTag() throws(Failure) {
            guard !rootClosed || !stack.isEmpty else { throw failure("a second root element") }
            guard stack.count < HookXMLScanner.maximumDepth else {
                throw failure("elements nest deeper than \(HookXMLScanner.maximumDepth)")
            }
            let start = position
            let startLine = line
            position += 1
            let name = try self.name("element name")
            var attributes: [HookXMLElement.Attribute] = []
            var selfClosing = false
            while true {
                let hadSpace = skipWhitespace()
                guard position < bytes.count else { throw failure("unterminated start tag <\(name)>") }
                if bytes[position] == UInt8(ascii: ">") {
                    position += 1
                    break
                }
                if bytes[position] == UInt8(ascii: "/") {
                    guard position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: ">") else {
                        throw failure("expected '/>' in <\(name)>")
                    }
                    position += 2
                    selfClosing = true
                    break
                }
                guard hadSpace else { throw failure("expected whitespace before an attribute in <\(name)>") }
                let attributeName = try self.name("attribute name")
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else {
                    throw failure("expected '=' after attribute \(attributeName) in <\(name)>")
                }
                position += 1
                skipWhitespace()
                let value = try attributeValue(attributeName)
                if attributes.contains(where: { $0.name == attributeName }) {
                    throw failure("attribute \(attributeName) appears twice in <\(name)>")
                }
                attributes.append(.init(name: attributeName, value: value))
            }
            let index = elements.count
            elements.append(
                HookXMLElement(
                    name: name, attributes: attributes, depth: stack.count, parent: stack.last, start: start,
                    end: position, lastDescendant: index, line: startLine))
            if selfClosing {
                close(index)
            } else {
                stack.append(index)
            }
        }

        mutating func endTag() throws(Failure) {
            position += 2
            let name = try self.name("element name")
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ">") else {
                throw failure("expected '>' to end </\(name)>")
            }
            position += 1
            guard let open = stack.popLast() else { throw failure("end tag </\(name)> with no open element") }
            guard elements[open].name == name else {
                throw failure(
                    "end tag </\(name)> does not match <\(elements[open].name)> (line \(elements[open].line))")
            }
            close(open)
        }

        /// Records the end of element `index` at the current position.
        mutating func close(_ index: Int) {
            elements[index].end = position
            elements[index].lastDescendant = elements.count - 1
            if stack.isEmpty { rootClosed = true }
        }

        /// A name: everything up to whitespace or one of `/ > = < ' "`.
        mutating func name(_ what: String) throws(Failure) -> String {
            let start = position
            while position < bytes.count {
                let byte = bytes[position]
                if isWhitespace(byte) || byte == UInt8(ascii: "/") || byte == UInt8(ascii: ">")
                    || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "<") || byte == UInt8(ascii: "'")
                    || byte == UInt8(ascii: "\"")
                {
                    break
                }
                position += 1
            }
            guard position > start else { throw failure("expected an \(what)") }
            guard let name = String(validating: bytes[start..<position], as: UTF8.self) else {
                throw failure("an \(what) that is not UTF-8")
            }
            return name
        }

        /// A quoted attribute value, decoded as an XML parser reports it.
        mutating func attributeValue(_ attribute: String) throws(Failure) -> String {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "'") || bytes[position] == UInt8(ascii: "\"")
            else { throw failure("expected a quoted value for attribute \(attribute)") }
            let quote = bytes[position]
            position += 1
            var value: [UInt8] = []
            while true {
                guard position < bytes.count else { throw failure("unterminated value of attribute \(attribute)") }
                let byte = bytes[position]
                if byte == quote {
                    position += 1
                    break
                }
                switch byte {
                case UInt8(ascii: "<"):
                    throw failure("'<' in the value of attribute \(attribute)")
                case UInt8(ascii: "&"):
                    try reference(into: &value, attribute: attribute)
                    continue
                case UInt8(ascii: "\r"):
                    // End-of-line handling turns CR LF and a lone CR into LF, which normalisation
                    // then turns into a space.
                    if position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "\n") { position += 1 }
                    value.append(UInt8(ascii: " "))
                case UInt8(ascii: "\n"):
                    line += 1
                    value.append(UInt8(ascii: " "))
                case UInt8(ascii: "\t"):
                    value.append(UInt8(ascii: " "))
                default:
                    value.append(byte)
                }
                position += 1
            }
            guard let text = String(validating: value, as: UTF8.self) else {
                throw failure("the value of attribute \(attribute) is not UTF-8")
            }
            return text
        }

        /// `&name;`, `&#N;` or `&#xH;` at the current position, appended as UTF-8.
        mutating func reference(into value: inout [UInt8], attribute: String) throws(Failure) {
            guard let semicolon = bytes[position...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                throw failure("an unterminated entity reference in attribute \(attribute)")
            }
            let body = Array(bytes[(position + 1)..<semicolon])
            position = semicolon + 1
            switch body {
            case Array("lt".utf8): value.append(UInt8(ascii: "<"))
            case Array("gt".utf8): value.append(UInt8(ascii: ">"))
            case Array("amp".utf8): value.append(UInt8(ascii: "&"))
            case Array("apos".utf8): value.append(UInt8(ascii: "'"))
            case Array("quot".utf8): value.append(UInt8(ascii: "\""))
            default:
                var scalar: UInt32?
                if body.starts(with: Array("#x".utf8)) {
                    scalar = UInt32(String(decoding: body.dropFirst(2), as: UTF8.self), radix: 16)
                } else if body.first == UInt8(ascii: "#") {
                    scalar = UInt32(String(decoding: body.dropFirst(), as: UTF8.self), radix: 10)
                }
                guard let scalar, scalar != 0, let character = Unicode.Scalar(scalar) else {
                    throw failure(
                        "unknown entity or bad character reference '&\(String(decoding: body, as: UTF8.self));' in attribute \(attribute)"
                    )
                }
                value.append(contentsOf: Array(String(Character(character)).utf8))
            }
        }

        // MARK: Helpers

        func matches(_ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            return literal.withUTF8Buffer { buffer in
                bytes[position..<(position + count)].elementsEqual(buffer)
            }
        }

        /// Moves past the next `terminator`, counting lines.
        mutating func skip(past terminator: StaticString, what: String) throws(Failure) {
            let startLine = line
            while position < bytes.count {
                if matches(terminator) {
                    position += terminator.utf8CodeUnitCount
                    return
                }
                if bytes[position] == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
            throw Failure(line: startLine, message: "unterminated \(what)")
        }

        @discardableResult
        mutating func skipWhitespace() -> Bool {
            let start = position
            while position < bytes.count, isWhitespace(bytes[position]) {
                if bytes[position] == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
            return position > start
        }

        func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
        }

        func failure(_ message: String) -> Failure {
            Failure(line: line, message: message)
        }
    }
}
