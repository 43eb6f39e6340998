// MARK: - XMLLimits

/// Bounds that ``XMLReader`` enforces while it reads: input larger, deeper or with more elements
/// is refused with an ``XMLError``, never read further.
public struct XMLLimits: Sendable, Hashable {
    /// libxml2's own nesting limit without `XML_PARSE_HUGE`, which the reader never sets.
    public static let libxml2MaximumDepth = 256

    /// The largest input in bytes.
    public var maxBytes: Int
    /// The deepest nesting; the root element is depth 1. At most ``libxml2MaximumDepth``.
    public var maxDepth: Int
    /// The most elements in the document.
    public var maxElements: Int

    /// Creates limits.
    /// - Parameters:
    ///   - maxBytes: The largest input in bytes (default 16 MiB: a domain XML is a few tens of KiB).
    ///   - maxDepth: The deepest nesting, root = 1 (default and at most 256, libxml2's limit).
    ///   - maxElements: The most elements (default 1 Mi).
    public init(maxBytes: Int = 16 << 20, maxDepth: Int = libxml2MaximumDepth, maxElements: Int = 1 << 20) {
        precondition(maxDepth >= 1 && maxDepth <= Self.libxml2MaximumDepth, "maxDepth must be in 1...256")
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxElements = maxElements
    }
}

// MARK: - XMLError

/// Why ``XMLReader`` refused a document: what, and where.
public struct XMLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: Sendable, Hashable {
        /// The input is larger than ``XMLLimits/maxBytes``.
        case tooLarge(bytes: Int, limit: Int)
        /// Elements nest deeper than ``XMLLimits/maxDepth``.
        case tooDeep(limit: Int)
        /// More elements than ``XMLLimits/maxElements``.
        case tooManyElements(limit: Int)
        /// A document type declaration (or another `<!` declaration before the root): DTDs can
        /// declare entities, which the reader never expands, so a document with one is refused.
        case doctype
        /// The input is not valid UTF-8 (the only encoding read; encoding declarations are ignored).
        case invalidUTF8
        /// The input contains a NUL byte.
        case nulByte
        /// The input is empty or only whitespace.
        case empty
        /// Not well-formed (or namespace-well-formed) XML; `code` is libxml2's `xmlParserErrors`.
        case malformed(code: Int)
    }

    /// What kind of problem.
    public let kind: Kind
    /// The 1-based line where it was found, 0 when not tied to a place (size).
    public let line: Int
    /// The 1-based column, 0 when unknown.
    public let column: Int
    /// What is wrong, in words (for `malformed`, libxml2's message when no plainer words exist).
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, line: Int, column: Int = 0, message: String) {
        self.kind = kind
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line L, column C: message`, or the message alone without a place.
    public var description: String {
        switch (line, column) {
        case (0, _): message
        case (_, 0): "line \(line): \(message)"
        default: "line \(line), column \(column): \(message)"
        }
    }
}
