// MARK: - YAMLLimits

/// Bounds that ``YAMLReader`` enforces while it reads: a text larger, deeper, or whose aliases
/// repeat more nodes is refused with a ``YAMLError``, never read further.
public struct YAMLLimits: Sendable, Hashable {
    /// The largest text in bytes.
    public var maxBytes: Int
    /// The deepest nesting: a root scalar or collection is depth 1, its children depth 2.
    public var maxDepth: Int
    /// The most nodes in the composed tree, counting every node an alias repeats (so that ten
    /// levels of ten aliases each, "a billion laughs", are refused rather than walked).
    public var maxNodes: Int

    /// Creates limits.
    /// - Parameters:
    ///   - maxBytes: The largest text in bytes (default 16 MiB).
    ///   - maxDepth: The deepest nesting, root = 1 (default 64).
    ///   - maxNodes: The most nodes, aliases expanded (default 1 Mi).
    public init(maxBytes: Int = 16 << 20, maxDepth: Int = 64, maxNodes: Int = 1 << 20) {
        precondition(maxBytes >= 0 && maxDepth >= 1 && maxNodes >= 1, "YAML limits must be positive")
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
    }
}

// MARK: - YAMLError

/// Why ``YAMLReader`` refused a text, or ``YAMLEmitter`` could not write a tree: what, and where.
public struct YAMLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: Sendable, Hashable {
        /// libyaml could not read the characters: not UTF-8, or a control character.
        case reader
        /// libyaml found a broken token (an unclosed quote, a tab where indentation is expected, ...).
        case scanner
        /// libyaml found tokens in an order YAML does not allow (a key where a value belongs, ...).
        case parser
        /// A mapping has the same key more than once; `keys` are the keys given twice, sorted
        /// (a key that is not a scalar is shown as `<a mapping>` or `<a sequence>`).
        case duplicateKeys(keys: [String])
        /// An alias (`*name`) names no anchor (`&name`) defined before it and closed.
        case undefinedAlias(name: String)
        /// Nodes nest deeper than ``YAMLLimits/maxDepth``.
        case tooDeep(limit: Int)
        /// More nodes than ``YAMLLimits/maxNodes``, aliases expanded.
        case tooManyNodes(limit: Int)
        /// The text is larger than ``YAMLLimits/maxBytes``.
        case tooLarge(bytes: Int, limit: Int)
        /// The text holds more than one document.
        case multipleDocuments
        /// libyaml's emitter refused the tree.
        case emitter
        /// libyaml could not allocate memory.
        case memory
    }

    /// What kind of problem.
    public let kind: Kind
    /// Where it was found; `nil` when not tied to a place.
    public let mark: YAMLMark?
    /// What is wrong, in words: libyaml's own (`found unexpected end of stream`) for the
    /// reader, scanner and parser kinds.
    public let message: String
    /// What libyaml was reading when it found the problem (`while scanning a quoted scalar`),
    /// when it says.
    public let context: String?
    /// Where that started.
    public let contextMark: YAMLMark?

    /// Creates an error.
    public init(
        _ kind: Kind, mark: YAMLMark?, message: String, context: String? = nil, contextMark: YAMLMark? = nil
    ) {
        self.kind = kind
        self.mark = mark
        self.message = message
        self.context = context
        self.contextMark = contextMark
    }

    /// `line L, column C: message (context at line L, column C)`, without what is unknown.
    public var description: String {
        var text = mark.map { "line \($0.line), column \($0.column): " } ?? ""
        text += message
        if let context {
            text += " (\(context)"
            if let contextMark { text += " at line \(contextMark.line), column \(contextMark.column)" }
            text += ")"
        }
        return text
    }
}
