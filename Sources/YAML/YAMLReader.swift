internal import CLibyaml

// MARK: - YAMLReader

/// Reads one YAML document into a ``YAMLNode`` tree with libyaml, safely.
///
/// The one YAML reader of recontextd (the configuration file). libyaml's event parser does the
/// reading; the tree is composed here, from its events, so that:
/// - every node carries the ``YAMLMark`` where it starts (1-based line and column);
/// - a mapping that has a key twice is refused (``YAMLError/Kind/duplicateKeys(keys:)``, at the
///   first occurrence of the key), as YAML requires;
/// - aliases are replaced by the node their anchor names (an alias to an anchor that is not
///   defined, or not yet closed, is an error), and nodes repeated by aliases count towards
///   ``YAMLLimits/maxNodes``, so that nested aliases cannot blow up;
/// - nesting is bounded (``YAMLLimits/maxDepth``), with an error, not a crash;
/// - a text with a second document is refused; an empty one (or only comments) is `nil`;
/// - a leading byte-order mark is skipped.
///
/// Plain scalars get their tag resolved by YAML 1.1 rules (``YAMLTag/resolvingPlain(_:)``);
/// nothing else is converted: the tree holds text, and the caller decides what a value means.
///
/// - Important: Thread-safe: every call uses a parser of its own.
public enum YAMLReader {
    /// Reads a text that holds at most one document.
    ///
    /// The corresponding C functions are `yaml_parser_initialize`, `yaml_parser_set_input_string`
    /// and `yaml_parser_parse`.
    /// - Parameters:
    ///   - text: The YAML text (UTF-8).
    ///   - limits: Size, depth and node-count bounds.
    /// - Returns: The root node, or `nil` when the text holds no document.
    /// - Throws: ``YAMLError`` saying what is wrong and where.
    public static func compose(_ text: String, limits: YAMLLimits = YAMLLimits()) throws(YAMLError) -> YAMLNode? {
        let count = text.utf8.count
        guard count <= limits.maxBytes else {
            throw YAMLError(
                .tooLarge(bytes: count, limit: limits.maxBytes), mark: nil,
                message: "the text is \(count) bytes, more than the limit of \(limits.maxBytes)")
        }
        // NUL-terminated, so never empty: libyaml asserts that its input pointer is not NULL.
        let cString = text.utf8CString
        let result = cString.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UInt8.self) { bytes in
                composeDocument(UnsafeBufferPointer(rebasing: bytes[0..<count]), limits: limits)
            }
        }
        return try result.get()
    }

    /// Runs the parser over `bytes` and composes its single document.
    private static func composeDocument(_ bytes: UnsafeBufferPointer<UInt8>, limits: YAMLLimits) -> Result<
        YAMLNode?, YAMLError
    > {
        do throws(YAMLError) {
            let parser = try EventParser(input: bytes)
            _ = try parser.next() // STREAM-START
            let first = try parser.next()
            guard case .documentStart = first.kind else { return .success(nil) } // STREAM-END
            var composer = Composer(limits: limits)
            var root: YAMLNode?
            while root == nil {
                root = try composer.add(try parser.next())
            }
            _ = try parser.next() // DOCUMENT-END
            let after = try parser.next()
            if case .documentStart = after.kind {
                throw YAMLError(
                    .multipleDocuments, mark: after.mark, message: "but found another document",
                    context: "expected a single document in the stream", contextMark: YAMLMark(line: 1, column: 1))
            }
            return .success(root)
        } catch {
            return .failure(error)
        }
    }
}

// MARK: - Event

/// One libyaml parser event, copied out of its `yaml_event_t`.
struct Event {
    /// What the event is, with what it carries.
    enum Kind {
        case streamStart
        case streamEnd
        case documentStart
        case documentEnd
        case alias(anchor: String)
        case scalar(text: String, style: YAMLNode.ScalarStyle, tag: String?, anchor: String?)
        case sequenceStart(style: YAMLNode.CollectionStyle, tag: String?, anchor: String?)
        case sequenceEnd
        case mappingStart(style: YAMLNode.CollectionStyle, tag: String?, anchor: String?)
        case mappingEnd
    }

    let kind: Kind
    /// Where the event starts, 1-based.
    let mark: YAMLMark
}

// MARK: - EventParser

/// Owns a libyaml `yaml_parser_t` reading a buffer that outlives it, and hands out its events.
///
/// - Important: Used by one composition, on one thread; the input buffer must stay valid for
///   the parser's lifetime.
final class EventParser {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let input: UnsafeBufferPointer<UInt8>

    /// Creates a parser over UTF-8 input.
    init(input: UnsafeBufferPointer<UInt8>) throws(YAMLError) {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        guard yaml_parser_initialize(parser) == 1 else {
            parser.deallocate()
            throw YAMLError(.memory, mark: nil, message: "libyaml could not allocate a parser")
        }
        // No yaml_parser_set_encoding: libyaml then looks for a byte-order mark, and skips a UTF-8
        // one (with the encoding set, it would read the mark as a character of the first line,
        // and a mapping starting there would not line up with the next line's keys). A String
        // holds no UTF-16 mark, so the input is always read as UTF-8.
        yaml_parser_set_input_string(parser, input.baseAddress, input.count)
        self.parser = parser
        self.input = input
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
    }

    /// The next event. The corresponding C function is `yaml_parser_parse`.
    func next() throws(YAMLError) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw parserError() }
        defer { yaml_event_delete(&event) }
        let mark = YAMLMark(line: event.start_mark.line + 1, column: event.start_mark.column + 1)
        let kind: Event.Kind
        switch event.type {
        case YAML_STREAM_START_EVENT: kind = .streamStart
        case YAML_DOCUMENT_START_EVENT: kind = .documentStart
        case YAML_DOCUMENT_END_EVENT: kind = .documentEnd
        case YAML_ALIAS_EVENT: kind = .alias(anchor: string(event.data.alias.anchor) ?? "")
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            kind = .scalar(
                text: text, style: Self.style(scalar.style), tag: string(scalar.tag), anchor: string(scalar.anchor))
        case YAML_SEQUENCE_START_EVENT:
            let start = event.data.sequence_start
            kind = .sequenceStart(
                style: start.style == YAML_FLOW_SEQUENCE_STYLE ? .flow : .block, tag: string(start.tag),
                anchor: string(start.anchor))
        case YAML_SEQUENCE_END_EVENT: kind = .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            let start = event.data.mapping_start
            kind = .mappingStart(
                style: start.style == YAML_FLOW_MAPPING_STYLE ? .flow : .block, tag: string(start.tag),
                anchor: string(start.anchor))
        case YAML_MAPPING_END_EVENT: kind = .mappingEnd
        default: kind = .streamEnd
        }
        return Event(kind: kind, mark: mark)
    }

    private static func style(_ style: yaml_scalar_style_t) -> YAMLNode.ScalarStyle {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: .literal
        case YAML_FOLDED_SCALAR_STYLE: .folded
        default: .plain
        }
    }

    /// The parser's error, read right after the failed call.
    private func parserError() -> YAMLError {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown problem"
        let context = state.context.map { String(cString: $0) }
        let problemMark = YAMLMark(line: state.problem_mark.line + 1, column: state.problem_mark.column + 1)
        let contextMark =
            context == nil ? nil : YAMLMark(line: state.context_mark.line + 1, column: state.context_mark.column + 1)
        switch state.error {
        case YAML_MEMORY_ERROR:
            return YAMLError(.memory, mark: nil, message: "libyaml could not allocate memory")
        case YAML_READER_ERROR:
            // The reader reports a byte offset, not a mark.
            return YAMLError(.reader, mark: Self.mark(at: state.problem_offset, in: input), message: problem)
        case YAML_SCANNER_ERROR:
            return YAMLError(.scanner, mark: problemMark, message: problem, context: context, contextMark: contextMark)
        default:
            return YAMLError(.parser, mark: problemMark, message: problem, context: context, contextMark: contextMark)
        }
    }

    /// The mark of byte `offset`: lines end at LF, CR LF or CR; columns count characters.
    static func mark(at offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> YAMLMark {
        var line = 1
        var column = 1
        var index = 0
        let end = min(offset, bytes.count)
        while index < end {
            let byte = bytes[index]
            if byte == 0x0A || (byte == 0x0D && (index + 1 >= bytes.count || bytes[index + 1] != 0x0A)) {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80, byte != 0x0D {
                column += 1
            }
            index += 1
        }
        return YAMLMark(line: line, column: column)
    }
}

/// A libyaml C string (anchor or tag) as a Swift string.
private func string(_ pointer: UnsafeMutablePointer<UInt8>?) -> String? {
    pointer.map { String(cString: $0) }
}
