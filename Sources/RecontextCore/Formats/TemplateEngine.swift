// MARK: - TemplateValues

/// The values a template sees: `host.*`, `vm.*` and the merged `var.*`.
///
/// - `host.name` and `host.<variable>` for every host variable (secret ones included);
/// - `vm.name`, `vm.uuid`, `vm.hostname`, `vm.instance_id` and `vm.<variable>` for every VM variable;
/// - `var.<variable>`: host variables overridden by VM variables of the same name.
struct TemplateValues {
    var host: [String: String]
    var vm: [String: String]
    var merged: [String: String]
}

// MARK: - TemplateEngine

/// Renders Mustache templates as plain text, and turns a reference to anything undefined into an
/// error instead of an empty string.
///
/// The Mustache is recontextd's own (``MustacheParser``, ``MustacheRenderer``), which parses and
/// renders as swift-mustache 2.1.1 did before it; values are text only (no lists, no lambdas).
///
/// - Output is TEXT: nothing is HTML-escaped; `{{x}}`, `{{{x}}}` and `{{&x}}` are the same (unless
///   the template itself says `{{%CONTENT_TYPE: HTML}}`).
/// - `{{host.zone}}` with no `zone` host variable is an error naming `host.zone`. So is an unknown
///   transform (`{{shout(host.name)}}`), a group used as a value (`{{host}}`), a name below a value
///   (`{{host.zone.x}}`), and a transform of a group, of true/false (`empty`) or of nothing.
/// - Sections test presence: `{{#host.proxy}}proxy={{host.proxy}}{{/host.proxy}}` renders nothing,
///   without error, when `proxy` is undefined or empty; `{{^host.proxy}}...{{/host.proxy}}` renders
///   when it is. Inside `{{#host.zone}}`, `{{.}}` is the zone; inside `{{#host}}`, `{{zone}}` is
///   `host.zone`.
/// - The transforms `uppercased`, `lowercased`, `capitalized`, `reversed` and `empty` work on values,
///   also as section names (`{{#empty(vm.x)}}...{{/empty(vm.x)}}`).
/// - Comments, set delimiters, standalone lines and `{{$block}}default{{/block}}` follow the
///   Mustache spec (as swift-mustache read it; see ``MustacheParser``).
/// - Partials (`{{> name}}`, `{{>*name}}`, `{{<parent}}`) are not supported: there is no template
///   library, so every partial is undefined, and an error naming it, like an undefined variable.
enum TemplateEngine {
    /// What one render gives: the text, and the host variables it looked up.
    struct Rendering {
        /// The rendered text.
        var text: String
        /// Names of host variables the template looked up (as `host.NAME` or `var.NAME`), found or
        /// not, rendered or only tested by a section: what the template references.
        var hostVariables: Set<String>
    }

    /// Renders one template.
    /// - Parameters:
    ///   - source: The template text.
    ///   - values: The values it may refer to.
    ///   - domain: The domain, for errors.
    ///   - field: The file or document, for errors.
    /// - Returns: The rendered text and the host variables it references.
    /// - Throws: ``ContextError`` with ``ContextError/Code/templateSyntax`` (with the line and column)
    ///   or ``ContextError/Code/undefinedVariable`` (also for a partial: none is ever defined),
    ///   listing every problem.
    static func render(_ source: String, values: TemplateValues, domain: String, field: String) throws(ContextError)
        -> Rendering
    {
        let tokens: [MustacheToken]
        do {
            tokens = try MustacheParser.parse(source)
        } catch {
            throw ContextError(
                .templateSyntax,
                domain: domain,
                field: field,
                "template syntax error at line \(error.line), column \(error.column): \(error.problem.rawValue)"
            )
        }
        let partials = MustacheToken.partialNames(in: tokens)
        if !partials.isEmpty {
            throw problems(partials.map { "undefined partial \($0)" }, domain: domain, field: field)
        }
        var renderer = MustacheRenderer(values: values)
        let text = renderer.render(tokens)
        if !renderer.problems.isEmpty {
            throw problems(renderer.problems, domain: domain, field: field)
        }
        return Rendering(text: text, hostVariables: renderer.hostVariables)
    }

    /// The error listing `problems`, each once, sorted.
    static func problems(_ problems: [String], domain: String, field: String) -> ContextError {
        let unique = Array(Set(problems)).sorted()
        return ContextError(
            .undefinedVariable, domain: domain, field: field, "template uses " + unique.joined(separator: "; "))
    }
}
