// MARK: - MustacheRenderer

/// Renders parsed Mustache (``MustacheToken``s) with ``TemplateValues``, as text, and records what
/// the template referred to: each problem (anything undefined) and each host variable looked up.
///
/// Names resolve as swift-mustache resolved them with recontextd's values, which were the root (the
/// groups `host`, `vm`, `var`), a group (its variables, and the groups again), a text value (no
/// children) and an undefined name:
///
/// - `{{a.b.c}}` finds `a` in the innermost value of the section stack that has it (a text value
///   has nothing, a group or the root has every name, defined or not), then `b` and `c` in it.
///   `{{.}}` is the innermost value; `{{.a}}` finds `a` there only.
/// - Looking a name up in the `host` or `var` group records it as a host variable, found or not.
/// - Transforms run innermost first: `uppercased`, `lowercased`, `capitalized`, `reversed` give
///   text, `empty` gives true or false (rendered as `true`/`false`).
/// - A section renders when its value is defined and not empty (a group counts as defined), pushing
///   it on the stack (a true/false value is not pushed); an inverted section renders otherwise.
/// - `{{$block}}default{{/block}}` renders its default, each later line of it indented by the
///   whitespace in front of the tag.
///
/// Rendered as a value, an undefined name, a group or the root is a problem and renders nothing;
/// so is anything that swift-mustache silently rendered as nothing (a name below a text value,
/// a transform of a group, of true/false or of nothing). Partials render nothing: the caller refuses
/// a template that has any (``MustacheToken/partialNames(in:)``).
///
/// - Important: One renderer serves one render; it is not shared between threads.
struct MustacheRenderer {
    /// What a name resolves to.
    enum Value: Hashable {
        /// The values as a whole.
        case root
        /// `host`, `vm` or `var`.
        case group(String)
        /// A defined value, with the name it was found under (for problems).
        case text(String, name: String)
        /// The result of `empty`.
        case flag(Bool, name: String)
        /// A name that is not defined.
        case missing(String)

        /// The name the value was found under; empty for the root.
        var name: String {
            switch self {
            case .root: ""
            case .group(let name), .missing(let name), .text(_, let name), .flag(_, let name): name
            }
        }
    }

    /// The section stack and what applies from the enclosing tokens.
    struct Context {
        var stack: [Value] = [.root]
        /// What each later line of a block's output is indented by.
        var indentation = ""
        /// Whether `{{name}}` is HTML-escaped (`{{%CONTENT_TYPE: HTML}}`).
        var html = false
    }

    /// The names of the groups.
    static let groups: Set<String> = ["host", "vm", "var"]

    let values: TemplateValues
    /// Problems, in the order met (may repeat).
    var problems: [String] = []
    /// Host variables looked up through `host.` or `var.`, found or not.
    var hostVariables: Set<String> = []

    init(values: TemplateValues) {
        self.values = values
    }

    /// Renders `tokens` at the top level.
    mutating func render(_ tokens: [MustacheToken]) -> String {
        render(tokens, in: Context())
    }

    /// Renders `tokens`; a non-empty piece that starts a new line of this output is indented.
    mutating func render(_ tokens: [MustacheToken], in context: Context) -> String {
        var context = context
        let indentation = context.indentation
        var output = ""
        for token in tokens {
            let piece = render(token, in: &context)
            if !indentation.isEmpty, !piece.isEmpty, output.last == "\n" {
                output += indentation
            }
            output += piece
        }
        return output
    }

    /// Renders one token; a content-type pragma changes `context` for the tokens after it.
    mutating func render(_ token: MustacheToken, in context: inout Context) -> String {
        switch token {
        case .text(let text):
            return text
        case .variable(let name, let escaped):
            guard let value = resolve(name, in: context) else { return "" }
            let text = interpolate(value)
            return escaped && context.html ? Self.htmlEscaped(text) : text
        case .section(let name, let inner):
            switch resolve(name, in: context) {
            case nil, .missing: return ""
            case .flag(let isTrue, _): return isTrue ? render(inner, in: context) : ""
            case .text(let text, _) where text.isEmpty: return ""
            case let value?:
                var inside = context
                inside.stack.append(value)
                return render(inner, in: inside)
            }
        case .invertedSection(let name, let inner):
            switch resolve(name, in: context) {
            case nil, .missing: return render(inner, in: context)
            case .flag(let isTrue, _): return isTrue ? "" : render(inner, in: context)
            case .text(let text, _) where text.isEmpty: return render(inner, in: context)
            case .root, .group, .text: return ""
            }
        case .block(_, let indentation, let inner):
            var inside = context
            inside.indentation += indentation
            return render(inner, in: inside)
        case .contentType(let html):
            context.html = html
            return ""
        case .partial, .parent, .blockDefinition:
            return ""
        }
    }

    /// The text of a value rendered as a value; a problem for anything but text and true/false.
    mutating func interpolate(_ value: Value) -> String {
        switch value {
        case .text(let text, _):
            return text
        case .flag(let isTrue, _):
            return isTrue ? "true" : "false"
        case .group(let group):
            problems.append("the group \(group) as a value (name a variable, e.g. \(group).name)")
        case .root:
            problems.append("the whole context as a value")
        case .missing(let name):
            problems.append("undefined variable \(name)")
        }
        return ""
    }

    // MARK: - Names

    /// What `name` resolves to, its transforms applied; `nil` after a problem that makes it nothing.
    mutating func resolve(_ name: MustacheName, in context: Context) -> Value? {
        let innermost = context.stack.last ?? .root
        let parts = name.path.split(separator: ".").map(String.init)
        var value: Value
        if name.path == "." {
            value = innermost
        } else if name.path.isEmpty, let transform = name.transforms.first {
            problems.append("\(name.written) names no variable (name one, e.g. \(transform)(host.name))")
            return nil
        } else if name.path.first == "." {
            value = walk(parts[...], from: innermost)
        } else if let first = parts.first {
            value = .missing(name.path)
            for object in context.stack.reversed() {
                if let child = child(first, of: object) {
                    value = walk(parts.dropFirst(), from: child)
                    break
                }
            }
        } else {
            value = innermost
        }
        for transform in name.transforms.reversed() {
            guard let transformed = apply(transform, to: value) else { return nil }
            value = transformed
        }
        return value
    }

    /// Follows `parts` down from `value`; below a text value every name is undefined.
    mutating func walk(_ parts: ArraySlice<String>, from value: Value) -> Value {
        var value = value
        for part in parts {
            value = child(part, of: value) ?? .missing("\(value.name).\(part)")
        }
        return value
    }

    /// The child `name` of `value`: `nil` when a text value (it has none), so that the lookup climbs.
    mutating func child(_ name: String, of value: Value) -> Value? {
        switch value {
        case .root:
            return Self.groups.contains(name) ? .group(name) : .missing(name)
        case .group(let group):
            if group == "host" || group == "var" { hostVariables.insert(name) }
            let table =
                switch group {
                case "host": values.host
                case "vm": values.vm
                default: values.merged
                }
            if let text = table[name] { return .text(text, name: "\(group).\(name)") }
            return Self.groups.contains(name) ? .group(name) : .missing("\(group).\(name)")
        case .missing(let missing):
            return .missing("\(missing).\(name)")
        case .text, .flag:
            return nil
        }
    }

    /// `text` with `<`, `>`, `&`, `"` and `'` HTML-escaped.
    static func htmlEscaped(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "&": escaped += "&amp;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
