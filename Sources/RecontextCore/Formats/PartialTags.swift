import Mustache

// MARK: - PartialTags

/// The partials a parsed template refers to, found by walking swift-mustache's own parse.
///
/// swift-mustache renders a partial it cannot find as nothing and offers no hook for that case,
/// and its tokens are internal. Its parse is nevertheless the only one that agrees with its
/// renderer (set-delimiter tags, comments, standalone lines, inheritance), so this walks it with
/// `Mirror` instead of scanning the text a second time: a `partial` token (`{{> name}}`, and
/// `{{<parent}}` for inheritance) or a `dynamicNamePartial` token (`{{>*name}}`), at any depth
/// (sections, inverted sections, blocks, the blocks a parent is given).
enum PartialTags {
    /// The names of every partial in `template`, dynamic ones as `*name`, in the order found.
    /// - Parameter template: A parsed template.
    /// - Returns: The names (empty when there is none), or `nil` when the template does not have the
    ///   shape this walk knows (a `tokens` array): the caller must then refuse the template rather
    ///   than let a partial render as nothing.
    static func names(in template: MustacheTemplate) -> [String]? {
        var names: [String] = []
        guard collect(template, into: &names) else { return nil }
        return names
    }

    /// Adds the partials of `template` to `names`; `false` when it has no `tokens` array.
    private static func collect(_ template: MustacheTemplate, into names: inout [String]) -> Bool {
        guard let tokens = Mirror(reflecting: template).children.first(where: { $0.label == "tokens" })?.value as? [Any]
        else { return false }
        for token in tokens {
            let mirror = Mirror(reflecting: token)
            guard mirror.displayStyle == .enum, let payload = mirror.children.first else { continue }
            if payload.label == "partial" || payload.label == "dynamicNamePartial",
                let name = Mirror(reflecting: payload.value).children.first?.value as? String ?? payload.value
                    as? String
            {
                names.append(payload.label == "partial" ? name : "*" + name)
            }
            guard visit(payload.value, into: &names) else { return false }
        }
        return true
    }

    /// Descends into the templates nested anywhere in `value` (tuples, optionals, dictionaries).
    private static func visit(_ value: Any, into names: inout [String]) -> Bool {
        if let template = value as? MustacheTemplate { return collect(template, into: &names) }
        if value is String { return true }
        for child in Mirror(reflecting: value).children where !visit(child.value, into: &names) {
            return false
        }
        return true
    }
}
