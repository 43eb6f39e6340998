internal import CLibxml2

// MARK: - XMLReader

/// Reads untrusted XML into an ``XMLElement`` tree with libxml2, safely.
///
/// The one XML reader of recontextd: domain XML (Virt), context metadata (RecontextCore) and the
/// qemu hook all use it. What it does to stay safe on hostile input:
/// - no DTD is ever read: a document type declaration (internal subset or not) is refused with
///   ``XMLError/Kind/doctype`` as soon as libxml2 reports it, so no entity is ever declared,
///   substituted (`XML_PARSE_NOENT` is off) or loaded (`XML_PARSE_DTDLOAD` is off,
///   `XML_PARSE_NONET` is on); a reference to any entity but the five predefined ones is an error;
/// - the input must be valid UTF-8 without NUL bytes; an encoding declaration is ignored
///   (`XML_PARSE_IGNORE_ENC`), so byte offsets are offsets into the input as given;
/// - size, depth and element count are bounded (``XMLLimits``), with errors, not crashes;
/// - libxml2 prints nothing: errors go to a structured handler of the parser context, and the
///   first one becomes the ``XMLError``.
///
/// Processing instructions and comments are skipped. Namespaces are processed (an undefined
/// prefix is an error). Each element records the bytes it spans (``XMLElement/byteRange``), so
/// that a caller can cut an element out and keep every other byte as written.
///
/// - Important: Thread-safe: every call uses a parser context of its own, after libxml2's
///   one-time initialisation (`xmlInitParser`), which the first call performs.
public enum XMLReader {
    /// Parses a document.
    /// - Parameters:
    ///   - text: The document.
    ///   - limits: Size, depth and element-count bounds.
    /// - Returns: The root element.
    /// - Throws: ``XMLError`` saying what is wrong and where.
    public static func parse(_ text: String, limits: XMLLimits = XMLLimits()) throws(XMLError) -> XMLElement {
        try parse(Array(text.utf8), limits: limits)
    }

    /// Parses a document given as bytes (UTF-8).
    /// - Parameters:
    ///   - bytes: The document.
    ///   - limits: Size, depth and element-count bounds.
    /// - Returns: The root element.
    /// - Throws: ``XMLError`` saying what is wrong and where.
    public static func parse(_ bytes: [UInt8], limits: XMLLimits = XMLLimits()) throws(XMLError) -> XMLElement {
        try checkInput(bytes, limits: limits)
        let result = bytes.withUnsafeBufferPointer { parseChecked($0, limits: limits) }
        return try result.get()
    }

    /// The parser options: no network, encoding declarations ignored. Deliberately absent:
    /// `XML_PARSE_NOENT` (entity substitution), `XML_PARSE_DTDLOAD`, `XML_PARSE_DTDATTR`,
    /// `XML_PARSE_HUGE` (which lifts libxml2's own depth and size limits).
    static let options = Int32(bitPattern: XML_PARSE_NONET.rawValue | XML_PARSE_IGNORE_ENC.rawValue)

    /// `xmlInitParser`, once per process, before the first parser context.
    private static let initialized: Void = xmlInitParser()

    // MARK: - Before libxml2

    /// Refuses what libxml2 must never see: too much, NUL bytes, invalid UTF-8, nothing.
    static func checkInput(_ bytes: [UInt8], limits: XMLLimits) throws(XMLError) {
        guard bytes.count <= limits.maxBytes, bytes.count <= Int(Int32.max) else {
            throw XMLError(
                .tooLarge(bytes: bytes.count, limit: limits.maxBytes), line: 0,
                message: "the document is \(bytes.count) bytes, more than the limit of \(limits.maxBytes)")
        }
        if let offset = bytes.firstIndex(of: 0) {
            throw XMLError(.nulByte, line: line(at: offset, in: bytes), message: "the document contains a NUL byte")
        }
        if let offset = firstInvalidUTF8(bytes) {
            throw XMLError(.invalidUTF8, line: line(at: offset, in: bytes), message: "the document is not valid UTF-8")
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw XMLError(.empty, line: 1, message: "the document is empty")
        }
    }

    /// The offset of the first byte that does not start a valid UTF-8 sequence, or `nil`.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// The 1-based line of byte `offset`.
    static func line(at offset: Int, in bytes: some Collection<UInt8>) -> Int {
        1 + bytes.prefix(offset).lazy.filter { $0 == 0x0A }.count
    }

    // MARK: - libxml2

    /// Runs libxml2's SAX2 parser over checked input, building the tree in a ``TreeBuilder``.
    private static func parseChecked(_ buffer: UnsafeBufferPointer<UInt8>, limits: XMLLimits) -> Result<
        XMLElement, XMLError
    > {
        _ = initialized
        guard let base = buffer.baseAddress,
            let context = base.withMemoryRebound(
                to: CChar.self, capacity: buffer.count,
                { xmlCreateMemoryParserCtxt($0, Int32(buffer.count)) })
        else {
            return .failure(XMLError(.malformed(code: 2), line: 0, message: "libxml2 could not create a parser"))
        }
        defer { xmlFreeParserCtxt(context) }
        _ = xmlCtxtUseOptions(context, options)
        let builder = TreeBuilder(bytes: buffer, limits: limits, context: context)
        builder.install()
        _ = xmlParseDocument(context)
        builder.freeDocument()
        return builder.result()
    }
}
