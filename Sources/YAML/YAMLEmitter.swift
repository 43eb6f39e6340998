internal import CLibyaml

// MARK: - YAMLEmitter

/// Writes a ``YAMLNode`` tree as one YAML document with libyaml's emitter.
///
/// The settings: UTF-8, characters outside ASCII written as they are (only those YAML cannot
/// print, such as control characters and, in libyaml, characters beyond the Basic Multilingual
/// Plane, are escaped in double quotes), no line folding (unlimited width), two-space indentation,
/// LF line breaks, no `---` or `...`.
///
/// Each scalar is written in the style it asks for when libyaml can write its text that way
/// (otherwise libyaml picks the next one that can: plain, then single, then double quotes).
/// Tags are not written: a reader resolves every scalar from its text and style, so a text that
/// YAML 1.1 reads as something other than a string (`yes`, `null`, `1e3`) must ask for a quoted
/// style to be read back as a string. Collections are written in their style; an empty one is
/// written `{}` or `[]`.
public enum YAMLEmitter {
    /// Writes `node` as a document.
    ///
    /// The corresponding C functions are `yaml_emitter_initialize`, `yaml_emitter_emit` and the
    /// `yaml_*_event_initialize` functions.
    /// - Parameter node: The root.
    /// - Returns: The YAML text, ending with a line break.
    /// - Throws: ``YAMLError`` of kind ``YAMLError/Kind/emitter`` or ``YAMLError/Kind/memory`` when
    ///   libyaml refuses (not expected for any tree).
    public static func emit(_ node: YAMLNode) throws(YAMLError) -> String {
        let emitter = try EventEmitter()
        try emitter.emit { yaml_stream_start_event_initialize($0, YAML_UTF8_ENCODING) }
        try emitter.emit { yaml_document_start_event_initialize($0, nil, nil, nil, 1) }
        try emitter.emit(node)
        try emitter.emit { yaml_document_end_event_initialize($0, 1) }
        try emitter.emit { yaml_stream_end_event_initialize($0) }
        return String(decoding: emitter.output, as: UTF8.self)
    }
}

// MARK: - EventEmitter

/// Owns a libyaml `yaml_emitter_t` that writes into ``output``.
///
/// - Important: Used by one ``YAMLEmitter/emit(_:)`` call, on one thread.
final class EventEmitter {
    private let emitter: UnsafeMutablePointer<yaml_emitter_t>
    /// What the emitter has written so far.
    fileprivate(set) var output: [UInt8] = []

    init() throws(YAMLError) {
        let emitter = UnsafeMutablePointer<yaml_emitter_t>.allocate(capacity: 1)
        guard yaml_emitter_initialize(emitter) == 1 else {
            emitter.deallocate()
            throw YAMLError(.memory, mark: nil, message: "libyaml could not allocate an emitter")
        }
        yaml_emitter_set_encoding(emitter, YAML_UTF8_ENCODING)
        yaml_emitter_set_unicode(emitter, 1)
        yaml_emitter_set_width(emitter, -1)
        yaml_emitter_set_indent(emitter, 2)
        yaml_emitter_set_break(emitter, YAML_LN_BREAK)
        self.emitter = emitter
        yaml_emitter_set_output(emitter, onOutput, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        yaml_emitter_delete(emitter)
        emitter.deallocate()
    }

    /// Emits the event that `initialize` fills in. libyaml owns the event from then on.
    func emit(_ initialize: (UnsafeMutablePointer<yaml_event_t>) -> Int32) throws(YAMLError) {
        var event = yaml_event_t()
        guard initialize(&event) == 1 else {
            throw YAMLError(.memory, mark: nil, message: "libyaml could not make an event")
        }
        guard yaml_emitter_emit(emitter, &event) == 1 else {
            let state = emitter.pointee
            if state.error == YAML_MEMORY_ERROR {
                throw YAMLError(.memory, mark: nil, message: "libyaml could not allocate memory")
            }
            throw YAMLError(
                .emitter, mark: nil, message: state.problem.map { String(cString: $0) } ?? "libyaml could not emit")
        }
    }

    /// Emits a node and its children.
    func emit(_ node: YAMLNode) throws(YAMLError) {
        switch node {
        case .scalar(let scalar):
            // Not `text.utf8CString`'s count: the text may hold NUL characters, which libyaml
            // writes as "\0" when it is given the length.
            var bytes = Array(scalar.text.utf8)
            let length = bytes.count
            guard length < Int32.max else {
                throw YAMLError(.emitter, mark: nil, message: "a scalar of \(length) bytes is too long to write")
            }
            bytes.append(0)
            let style = Self.style(scalar.style)
            try emit { event in
                bytes.withUnsafeMutableBufferPointer {
                    yaml_scalar_event_initialize(event, nil, nil, $0.baseAddress, Int32(length), 1, 1, style)
                }
            }
        case .sequence(let sequence):
            let style = sequence.style == .flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE
            try emit { yaml_sequence_start_event_initialize($0, nil, nil, 1, style) }
            for item in sequence.items { try emit(item) }
            try emit { yaml_sequence_end_event_initialize($0) }
        case .mapping(let mapping):
            let style = mapping.style == .flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE
            try emit { yaml_mapping_start_event_initialize($0, nil, nil, 1, style) }
            for pair in mapping.pairs {
                try emit(pair.key)
                try emit(pair.value)
            }
            try emit { yaml_mapping_end_event_initialize($0) }
        }
    }

    private static func style(_ style: YAMLNode.ScalarStyle) -> yaml_scalar_style_t {
        switch style {
        case .plain: YAML_PLAIN_SCALAR_STYLE
        case .singleQuoted: YAML_SINGLE_QUOTED_SCALAR_STYLE
        case .doubleQuoted: YAML_DOUBLE_QUOTED_SCALAR_STYLE
        case .literal: YAML_LITERAL_SCALAR_STYLE
        case .folded: YAML_FOLDED_SCALAR_STYLE
        }
    }

    fileprivate func append(_ buffer: UnsafeBufferPointer<UInt8>) {
        output.append(contentsOf: buffer)
    }
}

/// libyaml's write handler: appends to the ``EventEmitter`` that `data` points to.
private func onOutput(_ data: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let buffer else { return size == 0 ? 1 : 0 }
    Unmanaged<EventEmitter>.fromOpaque(data).takeUnretainedValue().append(
        UnsafeBufferPointer(start: buffer, count: size))
    return 1
}
