// MARK: - ContextError

/// Why a VM's context data could not be parsed or rendered.
///
/// Always permanent (bad data): retrying with the same metadata and host facts fails the same way.
/// The ``description`` names the domain, the field and the problem, and never contains the value
/// of a variable (values may be secret).
///
/// ```
/// domain web1: file[2].path: must be a relative path, got "/etc/passwd"
/// domain web1: file[etc/app.conf]: template uses undefined variable host.monitoring_endpoint
/// ```
public struct ContextError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem this is.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The metadata is not well-formed XML, or not UTF-8.
        case malformedXML = "malformed-xml"
        /// The metadata has a DOCTYPE or entity declaration (refused: no DTDs, no entity expansion).
        case forbiddenDTD = "forbidden-dtd"
        /// The root element is not `<context>` in the recontextd namespace.
        case wrongRoot = "wrong-root"
        /// An element that the schema does not have, or in the wrong place.
        case unknownElement = "unknown-element"
        /// An attribute that the element does not have.
        case unknownAttribute = "unknown-attribute"
        /// A required attribute or element is missing.
        case missing
        /// A value of the wrong type or shape (mode, format, boolean, name, base64, ...).
        case invalidValue = "invalid-value"
        /// A file path that is absolute, climbs out (`..`), or is otherwise unsafe.
        case unsafePath = "unsafe-path"
        /// Two variables or files with the same name or path, or a path that collides with
        /// another file or one the format generates.
        case duplicate
        /// A size, count or depth limit of ``MetadataLimits`` was exceeded.
        case limitExceeded = "limit-exceeded"
        /// A part of the spec that the chosen format cannot carry.
        case unsupportedByFormat = "unsupported-by-format"
        /// A template could not be parsed.
        case templateSyntax = "template-syntax"
        /// A template refers to a variable, transform or partial that does not exist.
        case undefinedVariable = "undefined-variable"
    }

    /// What kind of problem this is.
    public var code: Code
    /// The domain's name, or empty when no domain is involved.
    public var domain: String
    /// The field, e.g. `format`, `file[2].path` (elements counted from 1), `var[db_password]`,
    /// `file[etc/app.conf]`, `user-data`; empty for the document as a whole.
    public var field: String
    /// What is wrong, in words; never contains a variable's value.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: What kind of problem this is.
    ///   - domain: The domain's name.
    ///   - field: The field.
    ///   - message: What is wrong.
    public init(_ code: Code, domain: String, field: String, _ message: String) {
        self.code = code
        self.domain = domain
        self.field = field
        self.message = message
    }

    /// Always `false`: bad data does not get better by retrying.
    public var isTransient: Bool { false }

    /// `domain NAME: FIELD: MESSAGE`, leaving out the parts that are empty.
    public var description: String {
        var parts: [String] = []
        if !domain.isEmpty { parts.append("domain \(domain)") }
        if !field.isEmpty { parts.append(field) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}
