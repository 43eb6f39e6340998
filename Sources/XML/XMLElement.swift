// MARK: - XMLElement

/// One element of a parsed document: an immutable value, with its children.
///
/// ``XMLReader/parse(_:limits:)`` builds the tree. Names are given as libxml2 reports them with
/// namespaces processed: ``name`` is the local name, ``prefix`` the prefix as written, and
/// ``namespaceURI`` the namespace the prefix (or the default namespace) is bound to.
public struct XMLElement: Sendable, Hashable {
    /// The local name, without prefix (`context` for `<recontext:context>`).
    public let name: String
    /// The prefix as written, `nil` for none.
    public let prefix: String?
    /// The namespace URI, empty for none.
    public let namespaceURI: String
    /// The attributes in document order; namespace declarations (`xmlns`, `xmlns:*`) are not
    /// attributes.
    public let attributes: [XMLAttribute]
    /// The child elements in document order.
    public let children: [XMLElement]
    /// All character data directly inside this element (text, references resolved, and CDATA
    /// sections), concatenated; text inside child elements is not included.
    public let text: String
    /// The 1-based line of the start tag's `<`.
    public let line: Int
    /// The bytes the element spans in the parsed input: from the `<` of its start tag to just
    /// after the `>` of its end tag (or of `/>`).
    public let byteRange: Range<Int>

    /// Creates an element (the reader does; tests may).
    public init(
        name: String, prefix: String? = nil, namespaceURI: String = "", attributes: [XMLAttribute] = [],
        children: [XMLElement] = [], text: String = "", line: Int = 1, byteRange: Range<Int> = 0..<0
    ) {
        self.name = name
        self.prefix = prefix
        self.namespaceURI = namespaceURI
        self.attributes = attributes
        self.children = children
        self.text = text
        self.line = line
        self.byteRange = byteRange
    }

    /// The name as written: `prefix:name`, or `name` without a prefix.
    public var qualifiedName: String {
        prefix.map { "\($0):\(name)" } ?? name
    }

    /// The value of the first attribute whose qualified name is `qualifiedName`, or `nil`.
    public func attribute(_ qualifiedName: String) -> String? {
        attributes.first { $0.qualifiedName == qualifiedName }?.value
    }

    /// The children whose qualified name is `qualifiedName`, in document order.
    public func children(named qualifiedName: String) -> [XMLElement] {
        children.filter { $0.qualifiedName == qualifiedName }
    }
}

// MARK: - XMLAttribute

/// One attribute of an ``XMLElement``.
public struct XMLAttribute: Sendable, Hashable {
    /// The local name.
    public let name: String
    /// The prefix as written, `nil` for none (an unprefixed attribute is in no namespace).
    public let prefix: String?
    /// The namespace URI, empty for none.
    public let namespaceURI: String
    /// The value as an XML parser reports it: references resolved, whitespace normalised.
    public let value: String

    /// Creates an attribute.
    public init(name: String, prefix: String? = nil, namespaceURI: String = "", value: String) {
        self.name = name
        self.prefix = prefix
        self.namespaceURI = namespaceURI
        self.value = value
    }

    /// The name as written: `prefix:name`, or `name`.
    public var qualifiedName: String {
        prefix.map { "\($0):\(name)" } ?? name
    }
}
