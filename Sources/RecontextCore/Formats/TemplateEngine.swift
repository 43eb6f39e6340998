import Mustache

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

/// Renders Mustache templates (swift-mustache) as plain text, and turns a reference to anything
/// undefined into an error instead of an empty string.
///
/// - Output is TEXT: nothing is HTML-escaped; `{{x}}` and `{{{x}}}` are the same.
/// - `{{host.zone}}` with no `zone` host variable is an error naming `host.zone`. So is an unknown
///   transform (`{{shout(host.name)}}`) or a group used as a value (`{{host}}`).
/// - Sections test presence: `{{#host.proxy}}proxy={{host.proxy}}{{/host.proxy}}` renders nothing,
///   without error, when `proxy` is undefined or empty; `{{^host.proxy}}...{{/host.proxy}}` renders
///   when it is.
/// - The transforms `uppercased`, `lowercased`, `capitalized`, `reversed` and `empty` work on values.
/// - Partials (`{{> name}}`, `{{>*name}}`, `{{<parent}}`) are not supported: there is no template
///   library, so every partial is undefined, and an error naming it, like an undefined variable.
enum TemplateEngine {
    /// The pragma put in front of every template: TEXT content type, on its own line so that the
    /// template's first line is kept exactly (a standalone tag takes its line with it).
    static let pragma = "{{% CONTENT_TYPE: TEXT}}\n"

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
    /// - Throws: ``ContextError`` with ``ContextError/Code/templateSyntax`` or
    ///   ``ContextError/Code/undefinedVariable`` (also for a partial: none is ever defined).
    static func render(_ source: String, values: TemplateValues, domain: String, field: String) throws(ContextError)
        -> Rendering
    {
        let template: MustacheTemplate
        do {
            template = try MustacheTemplate(string: pragma + source)
        } catch let error as MustacheTemplate.ParserError {
            let line = max(1, error.context.lineNumber - 1)
            throw ContextError(
                .templateSyntax,
                domain: domain,
                field: field,
                "template syntax error at line \(line), column \(error.context.columnNumber): \(describe(error.error))"
            )
        } catch {
            throw ContextError(.templateSyntax, domain: domain, field: field, "template syntax error: \(error)")
        }
        guard let partials = PartialTags.names(in: template) else {
            throw ContextError(
                .templateSyntax, domain: domain, field: field,
                "cannot check the template for partials: swift-mustache's parsed form is not the one known")
        }
        if !partials.isEmpty {
            let unique = Array(Set(partials)).sorted().map { "undefined partial \($0)" }
            throw ContextError(
                .undefinedVariable, domain: domain, field: field, "template uses " + unique.joined(separator: "; "))
        }
        let recorder = MissRecorder(values: values)
        let root = TemplateScope(group: nil, recorder: recorder)
        let output = template.render(root)
        if !recorder.problems.isEmpty {
            let unique = Array(Set(recorder.problems)).sorted()
            throw ContextError(
                .undefinedVariable, domain: domain, field: field, "template uses " + unique.joined(separator: "; "))
        }
        return Rendering(text: output, hostVariables: recorder.hostVariables)
    }

    static func describe(_ error: Error) -> String {
        guard let error = error as? MustacheTemplate.Error else { return "\(error)" }
        switch error {
        case .sectionCloseNameIncorrect: return "a section is closed with the wrong name"
        case .unfinishedName: return "a tag is not closed"
        case .expectedSectionEnd: return "a section is not closed"
        case .invalidSetDelimiter: return "a malformed set-delimiter tag"
        case .transformAppliedToInheritanceSection: return "a transform applied to an inheritance section"
        case .illegalTokenInsideInheritSection: return "an illegal tag inside an inheritance section"
        case .textInsideInheritSection: return "text inside an inheritance section"
        case .invalidConfigVariableSyntax: return "a malformed pragma"
        case .unrecognisedConfigVariable: return "an unknown pragma"
        @unknown default: return "\(error)"
        }
    }
}

// MARK: - MissRecorder

/// The values of one render and what it looked up and did not find.
///
/// - Important: Used by one synchronous render on one thread.
final class MissRecorder {
    let values: TemplateValues
    var problems: [String] = []
    /// Host variables looked up through `host.` or `var.`.
    var hostVariables: Set<String> = []

    init(values: TemplateValues) {
        self.values = values
    }
}

// MARK: - TemplateScope

/// A group of values (`host`, `vm`, `var`) or the root that holds them.
///
/// Inside a section the lookup climbs the context stack; a group therefore answers `host`, `vm`
/// and `var` with those groups, so climbing finds what the root would.
struct TemplateScope: MustacheParent, MustacheCustomRenderable {
    /// The group's name, `nil` for the root.
    let group: String?
    let recorder: MissRecorder

    static let groups = ["host", "vm", "var"]

    func child(named name: String) -> Any? {
        if let group {
            if group == "host" || group == "var" { recorder.hostVariables.insert(name) }
            let values: [String: String] =
                switch group {
                case "host": recorder.values.host
                case "vm": recorder.values.vm
                default: recorder.values.merged
                }
            if let value = values[name] {
                return TemplateText(text: value, name: "\(group).\(name)", recorder: recorder)
            }
        }
        if Self.groups.contains(name) {
            return TemplateScope(group: name, recorder: recorder)
        }
        return MissingValue(name: group.map { "\($0).\(name)" } ?? name, recorder: recorder)
    }

    var renderText: String {
        if let group {
            recorder.problems.append("the group \(group) as a value (name a variable, e.g. \(group).name)")
        } else {
            recorder.problems.append("the whole context as a value")
        }
        return ""
    }

    var isNull: Bool { false }
}

// MARK: - TemplateText

/// A defined value. Empty text counts as false in sections.
struct TemplateText: MustacheParent, MustacheCustomRenderable, MustacheTransformable {
    let text: String
    let name: String
    let recorder: MissRecorder

    /// A value has no children; `nil` lets the lookup climb on to the enclosing scopes.
    func child(named: String) -> Any? { nil }

    var renderText: String { text }

    var isNull: Bool { text.isEmpty }

    func transform(_ transform: String) -> Any? {
        switch text.transform(transform) {
        case let string as String: return TemplateText(text: string, name: "\(transform)(\(name))", recorder: recorder)
        case let substring as Substring:
            return TemplateText(text: String(substring), name: "\(transform)(\(name))", recorder: recorder)
        case let bool as Bool: return bool
        default:
            recorder.problems.append(
                "unknown transform \(transform)(...) (known: uppercased, lowercased, capitalized, reversed, empty)"
            )
            return nil
        }
    }
}

// MARK: - MissingValue

/// An undefined name: false in sections, an error when rendered as a value.
struct MissingValue: MustacheParent, MustacheCustomRenderable, MustacheTransformable {
    let name: String
    let recorder: MissRecorder

    func child(named: String) -> Any? {
        MissingValue(name: "\(name).\(named)", recorder: recorder)
    }

    var renderText: String {
        recorder.problems.append("undefined variable \(name)")
        return ""
    }

    var isNull: Bool { true }

    func transform(_ name: String) -> Any? { self }
}
