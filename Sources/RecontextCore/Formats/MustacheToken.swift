// MARK: - MustacheName

/// A name as a tag writes it: a dotted path and the transforms around it.
///
/// `{{uppercased(reversed(host.name))}}` is the path `host.name` with the transforms
/// `["uppercased", "reversed"]`, outermost first (so `reversed` runs first).
struct MustacheName: Hashable, Sendable {
    /// The dotted path: `host.name`, `.` (the current value), `.name` (no climbing), or empty.
    var path: String
    /// The transforms, outermost first.
    var transforms: [String] = []

    /// The name as written inside the tag, e.g. `uppercased(host.name)`.
    var written: String {
        transforms.reduce(path) { "\($1)(\($0)" } + String(repeating: ")", count: transforms.count)
    }
}

// MARK: - MustacheToken

/// One part of a parsed template (``MustacheParser``).
enum MustacheToken: Hashable, Sendable {
    /// Text copied as is.
    case text(String)
    /// `{{name}}` (escaped: HTML-escaped under `{{%CONTENT_TYPE: HTML}}`), `{{{name}}}` and `{{&name}}`.
    case variable(MustacheName, escaped: Bool)
    /// `{{#name}}...{{/name}}`: rendered when the value is present and not empty.
    case section(MustacheName, [MustacheToken])
    /// `{{^name}}...{{/name}}`: rendered when the value is absent or empty.
    case invertedSection(MustacheName, [MustacheToken])
    /// `{{$name}}default{{/name}}` outside a parent: renders its default, its lines indented by the
    /// whitespace in front of the tag.
    case block(String, indentation: String, [MustacheToken])
    /// `{{$name}}...{{/name}}` directly inside a parent: the block given to the parent.
    case blockDefinition(String, [MustacheToken])
    /// `{{> name}}`, or `{{>*name}}` (a dynamic name, kept as `*name`).
    case partial(String)
    /// `{{<name}}...{{/name}}`: a parent template (a partial) with the blocks it is given.
    case parent(String, [MustacheToken])
    /// `{{%CONTENT_TYPE: TEXT}}` or `{{%CONTENT_TYPE: HTML}}`: whether `{{name}}` is HTML-escaped
    /// from here to the end of the enclosing section.
    case contentType(html: Bool)

    /// The partials that `tokens` name, at any depth, in order: `{{> name}}` and `{{<name}}` as
    /// `name`, `{{>*name}}` as `*name`. Sections count whether or not they would render.
    static func partialNames(in tokens: [MustacheToken]) -> [String] {
        var names: [String] = []
        for token in tokens {
            switch token {
            case .partial(let name):
                names.append(name)
            case .parent(let name, let inner):
                names.append(name)
                names += partialNames(in: inner)
            case .section(_, let inner), .invertedSection(_, let inner), .block(_, _, let inner),
                .blockDefinition(_, let inner):
                names += partialNames(in: inner)
            case .text, .variable, .contentType:
                break
            }
        }
        return names
    }
}
