internal import CLibxml2

// MARK: - TreeBuilder

/// Builds the ``XMLElement`` tree from libxml2's SAX2 callbacks and enforces ``XMLLimits``.
///
/// The callbacks are C functions that find the builder through the parser context's `userData`.
/// Byte positions come from `xmlByteConsumed`: when libxml2 reports a start tag, its input stands
/// inside the tag (at the `>` or `/>`), and a start tag cannot contain a literal `<` (not in
/// names, not in attribute values), so the nearest `<` before it opens the tag; when libxml2
/// reports an end, its input stands just after the end tag's `>` (or the `/>`).
///
/// - Important: Used by exactly one synchronous `xmlParseDocument` call, on one thread.
final class TreeBuilder {
    /// An element whose end tag has not been reached yet.
    private struct Open {
        var name: String
        var prefix: String?
        var namespaceURI: String
        var attributes: [XMLAttribute]
        var children: [XMLElement] = []
        var text: [UInt8] = []
        var line: Int
        var start: Int
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let limits: XMLLimits
    private let context: xmlParserCtxtPtr
    private var stack: [Open] = []
    private var root: XMLElement?
    private var elementCount = 0
    /// The first problem: ours (a limit, a DOCTYPE) or libxml2's first error.
    private var failure: XMLError?
    /// A byte offset and its line, advanced as elements start (offsets only grow).
    private var lineCursor = (offset: 0, line: 1)

    init(bytes: UnsafeBufferPointer<UInt8>, limits: XMLLimits, context: xmlParserCtxtPtr) {
        self.bytes = bytes
        self.limits = limits
        self.context = context
    }

    /// Replaces the context's SAX handler with the builder's callbacks: nothing else is set, so
    /// libxml2 keeps no document of its own, resolves no entity (no `getEntity`), loads no
    /// external subset, and reports errors only to ``onError``.
    func install() {
        let sax = context.pointee.sax!
        sax.pointee = xmlSAXHandler()
        sax.pointee.initialized = UInt32(XML_SAX2_MAGIC)
        sax.pointee.startElementNs = onStartElement
        sax.pointee.endElementNs = onEndElement
        // The same function for all three: areBlanks() then never classifies text as ignorable.
        let text: charactersSAXFunc = onText
        sax.pointee.characters = text
        sax.pointee.ignorableWhitespace = text
        sax.pointee.cdataBlock = text
        sax.pointee.internalSubset = onDoctype
        sax.pointee.serror = onError
        context.pointee.userData = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Frees the document libxml2 may have built on its own (for entity declarations read after
    /// an error); with the builder's callbacks it builds none otherwise.
    func freeDocument() {
        if let document = context.pointee.myDoc {
            xmlFreeDoc(document)
            context.pointee.myDoc = nil
        }
    }

    /// The root, or the first problem.
    func result() -> Result<XMLElement, XMLError> {
        if let failure { return .failure(failure) }
        if context.pointee.wellFormed == 0 || context.pointee.nsWellFormed == 0 {
            return .failure(lastLibxml2Error() ?? XMLError(.malformed(code: 1), line: 0, message: "malformed XML"))
        }
        guard let root, stack.isEmpty else {
            return .failure(XMLError(.malformed(code: 4), line: 1, message: "the document has no root element"))
        }
        return .success(root)
    }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> TreeBuilder {
        Unmanaged<TreeBuilder>.fromOpaque(pointer!).takeUnretainedValue()
    }

    // MARK: - Events

    fileprivate func startElement(
        name: String, prefix: String?, namespaceURI: String, attributes: [XMLAttribute]
    ) {
        guard failure == nil else { return }
        let consumed = Int(xmlByteConsumed(context))
        var start = min(consumed, bytes.count - 1)
        while start > 0, bytes[start] != UInt8(ascii: "<") { start -= 1 }
        let line = advanceLine(to: start)
        elementCount += 1
        if elementCount > limits.maxElements {
            stop(
                XMLError(
                    .tooManyElements(limit: limits.maxElements), line: line,
                    message: "the document has more than \(limits.maxElements) elements"))
            return
        }
        if stack.count + 1 > limits.maxDepth {
            stop(
                XMLError(
                    .tooDeep(limit: limits.maxDepth), line: line,
                    message: "elements are nested deeper than \(limits.maxDepth) levels"))
            return
        }
        stack.append(
            Open(
                name: name, prefix: prefix, namespaceURI: namespaceURI, attributes: attributes, line: line,
                start: start))
    }

    fileprivate func endElement() {
        guard failure == nil, let open = stack.popLast() else { return }
        let end = Int(xmlByteConsumed(context))
        let element = XMLElement(
            name: open.name, prefix: open.prefix, namespaceURI: open.namespaceURI, attributes: open.attributes,
            children: open.children, text: String(decoding: open.text, as: UTF8.self), line: open.line,
            byteRange: open.start..<end)
        if stack.isEmpty {
            root = element
        } else {
            stack[stack.count - 1].children.append(element)
        }
    }

    fileprivate func appendText(_ text: UnsafeBufferPointer<UInt8>) {
        guard failure == nil, !stack.isEmpty else { return }
        stack[stack.count - 1].text.append(contentsOf: text)
    }

    fileprivate func doctype() {
        stop(
            XMLError(
                .doctype, line: Int(context.pointee.input.pointee.line),
                message: "a DOCTYPE is not allowed (no DTDs, no entity declarations)"))
    }

    /// libxml2's structured error callback: keeps the first error (warnings are ignored), and
    /// ends the parse there.
    ///
    /// After a fatal error libxml2 goes on reading with its SAX callbacks off, through a DTD too
    /// (whose callback then never refuses it), and may build a document of its own for the
    /// entities it finds (``freeDocument()`` frees it). The document is refused anyway, so the
    /// parse ends at the first error: `instate` is set to EOF, which every parsing loop checks.
    /// Not `xmlStopParser`: it also frees the input, which the function that raised the error
    /// may still be reading.
    fileprivate func libxml2Error(_ error: UnsafePointer<xmlError>) {
        guard failure == nil, error.pointee.level.rawValue >= XML_ERR_ERROR.rawValue else { return }
        context.pointee.instate = XML_PARSER_EOF
        context.pointee.disableSAX = 1
        failure = describe(error.pointee)
        // `<!doctype` or another `<!` declaration in the prolog is not a DOCTYPE to libxml2 but
        // "an invalid element name"; it is refused as what it was meant to be.
        if error.pointee.code == Int32(XML_ERR_NAME_REQUIRED.rawValue), root == nil, stack.isEmpty {
            let offset = Int(xmlByteConsumed(context))
            if offset >= 1, offset < bytes.count, bytes[offset - 1] == UInt8(ascii: "<"),
                bytes[offset] == UInt8(ascii: "!")
            {
                failure = XMLError(
                    .doctype, line: failure?.line ?? 1, column: failure?.column ?? 0,
                    message: "a DOCTYPE or other <! declaration before the root element is not allowed")
            }
        }
    }

    // MARK: - Helpers

    private func stop(_ error: XMLError) {
        if failure == nil { failure = error }
        xmlStopParser(context)
    }

    private func advanceLine(to offset: Int) -> Int {
        guard offset > lineCursor.offset else { return lineCursor.line }
        var line = lineCursor.line
        for index in lineCursor.offset..<offset where bytes[index] == 0x0A { line += 1 }
        lineCursor = (offset, line)
        return line
    }

    private func lastLibxml2Error() -> XMLError? {
        guard let error = xmlCtxtGetLastError(UnsafeMutableRawPointer(context)), error.pointee.code != 0 else {
            return nil
        }
        return describe(error.pointee)
    }

    private func describe(_ error: xmlError) -> XMLError {
        let code = Int(error.code)
        let libxml2Message =
            error.message.map { String(cString: $0) }?
            .trimmingSuffix(while: { $0 == "\n" || $0 == " " }) ?? "XML error \(code)"
        return XMLError(
            .malformed(code: code), line: Int(error.line), column: Int(error.int2),
            message: "not well-formed XML: " + (Self.words(forLibxml2Code: error.code) ?? libxml2Message))
    }

    /// Plain words for the libxml2 errors that broken documents produce most; `nil` for the
    /// others, whose own libxml2 message is used.
    static func words(forLibxml2Code code: Int32) -> String? {
        switch UInt32(bitPattern: code) {
        case XML_ERR_DOCUMENT_EMPTY.rawValue: "the document is empty"
        case XML_ERR_DOCUMENT_END.rawValue: "extra content after the root element"
        case XML_ERR_INVALID_CHAR.rawValue, XML_ERR_INVALID_CHARREF.rawValue: "a character that XML does not allow"
        case XML_ERR_UNDECLARED_ENTITY.rawValue, XML_WAR_UNDECLARED_ENTITY.rawValue:
            "an undeclared entity reference (only &amp; &lt; &gt; &quot; &apos; and character references work)"
        case XML_ERR_ATTRIBUTE_REDEFINED.rawValue: "an attribute given twice"
        case XML_ERR_TAG_NAME_MISMATCH.rawValue: "an end tag that does not match its start tag"
        case XML_ERR_TAG_NOT_FINISHED.rawValue: "the document ends inside an element"
        case XML_NS_ERR_UNDEFINED_NAMESPACE.rawValue: "an undefined namespace prefix"
        default: nil
        }
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var result = self
        while let last = result.last, predicate(last) { result.removeLast() }
        return result
    }
}

// MARK: - SAX2 callbacks

/// A C string from libxml2 (UTF-8, checked before parsing) as a Swift string.
private func string(_ pointer: UnsafePointer<xmlChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

private func onStartElement(
    _ context: UnsafeMutableRawPointer?, _ localName: UnsafePointer<xmlChar>?, _ prefix: UnsafePointer<xmlChar>?,
    _ uri: UnsafePointer<xmlChar>?, _ namespaceCount: Int32,
    _ namespaces: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?,
    _ attributeCount: Int32, _ defaultedCount: Int32, _ attributes: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?
) {
    var list: [XMLAttribute] = []
    if let attributes {
        list.reserveCapacity(Int(attributeCount))
        // Five pointers per attribute: local name, prefix, URI, value start, value end.
        for index in 0..<Int(attributeCount) {
            let base = attributes + index * 5
            let valueStart = base[3]!
            let value = UnsafeBufferPointer(start: valueStart, count: base[4]! - valueStart)
            list.append(
                XMLAttribute(
                    name: string(base[0]) ?? "", prefix: string(base[1]), namespaceURI: string(base[2]) ?? "",
                    value: decodeAttributeValue(value)))
        }
    }
    TreeBuilder.from(context).startElement(
        name: string(localName) ?? "", prefix: string(prefix), namespaceURI: string(uri) ?? "", attributes: list)
}

/// An attribute value as SAX2 hands it over. Without entity substitution (`XML_PARSE_NOENT`)
/// libxml2 passes every `&` of the value (from `&amp;` or `&#38;`) as the five characters `&#38;`,
/// for its own tree builder to decode; a literal `&` cannot occur otherwise (other entities are
/// errors), so each `&#38;` is one `&`.
private func decodeAttributeValue(_ value: UnsafeBufferPointer<UInt8>) -> String {
    guard value.contains(UInt8(ascii: "&")) else { return String(decoding: value, as: UTF8.self) }
    let escape = Array("&#38;".utf8)
    var decoded: [UInt8] = []
    decoded.reserveCapacity(value.count)
    var index = 0
    while index < value.count {
        if value[index] == UInt8(ascii: "&"), index + escape.count <= value.count,
            value[index..<(index + escape.count)].elementsEqual(escape)
        {
            decoded.append(UInt8(ascii: "&"))
            index += escape.count
        } else {
            decoded.append(value[index])
            index += 1
        }
    }
    return String(decoding: decoded, as: UTF8.self)
}

private func onEndElement(
    _ context: UnsafeMutableRawPointer?, _ localName: UnsafePointer<xmlChar>?, _ prefix: UnsafePointer<xmlChar>?,
    _ uri: UnsafePointer<xmlChar>?
) {
    TreeBuilder.from(context).endElement()
}

private func onText(_ context: UnsafeMutableRawPointer?, _ text: UnsafePointer<xmlChar>?, _ length: Int32) {
    guard let text, length > 0 else { return }
    TreeBuilder.from(context).appendText(UnsafeBufferPointer(start: text, count: Int(length)))
}

private func onDoctype(
    _ context: UnsafeMutableRawPointer?, _ name: UnsafePointer<xmlChar>?, _ externalID: UnsafePointer<xmlChar>?,
    _ systemID: UnsafePointer<xmlChar>?
) {
    TreeBuilder.from(context).doctype()
}

private func onError(_ context: UnsafeMutableRawPointer?, _ error: xmlErrorPtr?) {
    guard let context, let error else { return }
    TreeBuilder.from(context).libxml2Error(error)
}
