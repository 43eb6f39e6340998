// MARK: - YAMLMark

/// A place in a YAML text, as libyaml reports it but 1-based: `line 1, column 1` is the first
/// character. Columns count characters (Unicode scalars), not bytes.
public struct YAMLMark: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The 1-based line.
    public let line: Int
    /// The 1-based column, in characters.
    public let column: Int

    /// Creates a mark.
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `line:column`.
    public var description: String { "\(line):\(column)" }

    /// Whether `lhs` comes before `rhs` in the text.
    public static func < (lhs: YAMLMark, rhs: YAMLMark) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

// MARK: - YAMLNode

/// One node of a YAML document: a scalar, a mapping or a sequence, with its children.
///
/// ``YAMLReader/compose(_:limits:)`` builds the tree from a text, with a ``YAMLMark`` on every
/// node; ``YAMLEmitter/emit(_:)`` writes one. Aliases do not appear: a composed tree holds a
/// copy of the anchored node where the text has an alias.
public enum YAMLNode: Sendable, Hashable {
    /// A scalar: text with its style and tag.
    case scalar(Scalar)
    /// A mapping: key/value pairs in the order written.
    case mapping(Mapping)
    /// A sequence: items in the order written.
    case sequence(Sequence)

    /// Where the node starts in the text it was read from; `nil` for a node made in code.
    public var mark: YAMLMark? {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .mapping(let mapping): mapping.mark
        case .sequence(let sequence): sequence.mark
        }
    }

    /// The resolved tag (``YAMLTag/str``, ``YAMLTag/map``, ``YAMLTag/seq``, ...).
    public var tag: YAMLTag {
        switch self {
        case .scalar(let scalar): scalar.tag
        case .mapping(let mapping): mapping.tag
        case .sequence(let sequence): sequence.tag
        }
    }

    /// Whether the node is a null scalar (see ``Scalar/isNull``).
    public var isNull: Bool {
        if case .scalar(let scalar) = self { return scalar.isNull }
        return false
    }

    /// The scalar, or `nil` for a collection.
    public var scalar: Scalar? {
        if case .scalar(let scalar) = self { return scalar }
        return nil
    }

    /// The mapping, or `nil`.
    public var mapping: Mapping? {
        if case .mapping(let mapping) = self { return mapping }
        return nil
    }

    /// The sequence, or `nil`.
    public var sequence: Sequence? {
        if case .sequence(let sequence) = self { return sequence }
        return nil
    }

    /// For a mapping, the value of the first key that is a scalar with text `key`; otherwise `nil`.
    public subscript(key: String) -> YAMLNode? {
        mapping?[key]
    }
}

// MARK: - Styles

extension YAMLNode {
    /// How a scalar is (or is to be) written.
    public enum ScalarStyle: Sendable, Hashable, CaseIterable {
        /// Unquoted: `key: value`. The emitter falls back to single or double quotes when the
        /// text cannot be written plain (leading spaces, `: `, a `#` after a space, ...).
        case plain
        /// `'text'`.
        case singleQuoted
        /// `"text"`, with backslash escapes.
        case doubleQuoted
        /// A `|` block.
        case literal
        /// A `>` block.
        case folded
    }

    /// How a collection is (or is to be) written.
    public enum CollectionStyle: Sendable, Hashable, CaseIterable {
        /// Indented lines (`key: value`, `- item`). The emitter writes an empty collection as
        /// `{}` or `[]` anyway.
        case block
        /// `{key: value}` or `[item]`.
        case flow
    }
}

// MARK: - Scalar

extension YAMLNode {
    /// A scalar node.
    public struct Scalar: Sendable, Hashable {
        /// The text, with escapes and folding already applied (`"a\tb"` reads as a tab).
        public var text: String
        /// How it is written.
        public var style: ScalarStyle
        /// The resolved tag: the explicit tag when one is written (`!!str 1`), ``YAMLTag/str``
        /// for a quoted or block scalar, and for a plain one the type that its text reads as in
        /// YAML 1.1 (``YAMLTag/null``, ``YAMLTag/bool``, ``YAMLTag/int``, ``YAMLTag/float``,
        /// ``YAMLTag/timestamp``, ...; see ``YAMLTag/resolvingPlain(_:)``). Not written by the
        /// emitter.
        public var tag: YAMLTag
        /// Where it starts; `nil` for a scalar made in code.
        public var mark: YAMLMark?

        /// Creates a scalar.
        /// - Parameters:
        ///   - text: The text.
        ///   - style: How it is written.
        ///   - tag: The tag; `nil` resolves it from the text and the style as a reader would.
        ///   - mark: Where it starts.
        public init(_ text: String, style: ScalarStyle = .plain, tag: YAMLTag? = nil, mark: YAMLMark? = nil) {
            self.text = text
            self.style = style
            self.tag = tag ?? (style == .plain ? YAMLTag.resolvingPlain(text) : .str)
            self.mark = mark
        }

        /// Whether the scalar means "nothing": its tag is ``YAMLTag/null``, as for a plain
        /// scalar written as nothing, `~`, `null`, `Null` or `NULL` (never a quoted one).
        public var isNull: Bool { tag == .null }
    }
}

// MARK: - Mapping

extension YAMLNode {
    /// A mapping node: its pairs in the order written (duplicated keys are refused by the reader).
    public struct Mapping: Sendable, Hashable, RandomAccessCollection {
        /// One key and its value.
        public struct Pair: Sendable, Hashable {
            /// The key (almost always a scalar).
            public var key: YAMLNode
            /// The value.
            public var value: YAMLNode

            /// Creates a pair.
            public init(key: YAMLNode, value: YAMLNode) {
                self.key = key
                self.value = value
            }
        }

        /// The pairs in the order written.
        public var pairs: [Pair]
        /// How it is written.
        public var style: CollectionStyle
        /// The resolved tag: ``YAMLTag/map`` unless another is written.
        public var tag: YAMLTag
        /// Where it starts (at its first key for a block mapping); `nil` for one made in code.
        public var mark: YAMLMark?

        /// Creates a mapping.
        public init(pairs: [Pair], style: CollectionStyle = .block, tag: YAMLTag = .map, mark: YAMLMark? = nil) {
            self.pairs = pairs
            self.style = style
            self.tag = tag
            self.mark = mark
        }

        /// Creates a mapping from key/value tuples.
        public init(_ pairs: [(YAMLNode, YAMLNode)], style: CollectionStyle = .block) {
            self.init(pairs: pairs.map { Pair(key: $0.0, value: $0.1) }, style: style)
        }

        /// The index of the first pair (0).
        public var startIndex: Int { pairs.startIndex }
        /// The number of pairs.
        public var endIndex: Int { pairs.endIndex }
        /// The pair at `position`.
        public subscript(position: Int) -> Pair { pairs[position] }

        /// The value of the first key that is a scalar with text `key`, or `nil`.
        public subscript(key: String) -> YAMLNode? {
            pairs.first { $0.key.scalar?.text == key }?.value
        }
    }
}

// MARK: - Sequence

extension YAMLNode {
    /// A sequence node.
    public struct Sequence: Sendable, Hashable, RandomAccessCollection {
        /// The items in the order written.
        public var items: [YAMLNode]
        /// How it is written.
        public var style: CollectionStyle
        /// The resolved tag: ``YAMLTag/seq`` unless another is written.
        public var tag: YAMLTag
        /// Where it starts; `nil` for one made in code.
        public var mark: YAMLMark?

        /// Creates a sequence.
        public init(_ items: [YAMLNode], style: CollectionStyle = .block, tag: YAMLTag = .seq, mark: YAMLMark? = nil) {
            self.items = items
            self.style = style
            self.tag = tag
            self.mark = mark
        }

        /// The index of the first item (0).
        public var startIndex: Int { items.startIndex }
        /// The number of items.
        public var endIndex: Int { items.endIndex }
        /// The item at `position`.
        public subscript(position: Int) -> YAMLNode { items[position] }
    }
}
