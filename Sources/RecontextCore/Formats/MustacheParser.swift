// MARK: - MustacheParser

/// Parses Mustache text into ``MustacheToken``s, or a syntax error with its line and column.
///
/// It follows the Mustache spec as swift-mustache 2.1.1 parsed it, which recontextd used before, so
/// that every template that parsed then parses to the same thing now:
///
/// - Tags: variables `{{name}}`, `{{{name}}}`, `{{&name}}`; sections `{{#name}}`, `{{^name}}`,
///   `{{/name}}`; comments `{{! ... }}`; set delimiters `{{=<% %>=}}` (until the end of the enclosing
///   section); pragmas `{{%CONTENT_TYPE: TEXT}}` and `HTML`; partials `{{> name}}`, `{{>*name}}`;
///   parents `{{<name}}` with blocks `{{$name}}...{{/name}}`; blocks outside a parent.
/// - Names are ASCII letters, digits and `.-_?*`; transforms wrap them: `upper(lower(name))`.
/// - Whitespace (also newlines) may surround a name inside its tag.
/// - A line holding only whitespace and one section, inverted-section, closing, comment,
///   set-delimiter, pragma, partial, parent or block tag is removed with its line break. What counts
///   as the start of such a line, and what not, is swift-mustache's (its notion of "at a line start"
///   after a section is the opening tag's, and its trailing whitespace-only last line is dropped).
/// - Lines end at `\n` or `\r\n`; after a standalone tag, at any of `Character.isNewline`.
/// - An opening delimiter at the very end of the template, or followed by a line break, is dropped
///   (the rest of that line is text).
///
/// Text is read as `Character`s (extended grapheme clusters), like swift-mustache did. Sections,
/// blocks and parents nest at most ``maxDepth`` deep (swift-mustache had no bound, and a deep enough
/// template overflowed the stack).
struct MustacheParser {
    /// A template that cannot be parsed: what is wrong, and where (1-based, in characters).
    struct SyntaxError: Error, Hashable, Sendable {
        /// What is wrong.
        enum Problem: String, Sendable {
            case sectionClosedWithWrongName = "a section is closed with the wrong name"
            case tagNotClosed = "a tag is not closed"
            case sectionNotClosed = "a section is not closed"
            case malformedSetDelimiter = "a malformed set-delimiter tag"
            case transformOnBlock = "a transform applied to an inheritance section"
            case tagInsideParent = "an illegal tag inside an inheritance section"
            case malformedPragma = "a malformed pragma"
            case unknownPragma = "an unknown pragma"
            case nestedTooDeeply = "sections nested more than 100 deep"
        }

        var problem: Problem
        /// The line, counting every `Character.isNewline` before the position.
        var line: Int
        /// The column: characters since the last line break, plus one.
        var column: Int
    }

    /// Where the parse is: the section it is in, delimiters, and whether it is at a line start.
    struct State {
        /// The open section (or parent, or block) that a closing tag must name; `nil` at the top.
        var section: MustacheName?
        /// At the start of a line: its indentation is read, and a tag may be standalone.
        var newLine = true
        /// Directly inside a parent: `{{$name}}` defines a block given to the parent.
        var parentTopLevel = false
        var start = "{{"
        var end = "}}"
        /// How many sections, blocks and parents are open.
        var depth = 0

        /// The state inside a section, inverted section or block.
        func entering(_ name: MustacheName, newLine: Bool) -> State {
            var state = self
            state.section = name
            state.parentTopLevel = false
            state.newLine = state.newLine && newLine
            state.depth += 1
            return state
        }
    }

    /// The deepest nesting of sections, blocks and parents: parsing and rendering recurse once per
    /// level, and a template must not be able to exhaust a thread's stack.
    static let maxDepth = 100

    /// What a tag did: it closed the current section, or the parse goes on (at a line start or not).
    enum Step {
        case next(newLine: Bool)
        case closed
    }

    let text: String
    var position: String.Index

    /// Parses a template.
    /// - Parameter text: The template text.
    /// - Returns: Its tokens.
    /// - Throws: ``SyntaxError`` for the first problem found.
    static func parse(_ text: String) throws(SyntaxError) -> [MustacheToken] {
        var parser = MustacheParser(text: text, position: text.startIndex)
        return try parser.parse(State())
    }

    /// The tokens up to the end of the text or, inside a section, up to its closing tag.
    mutating func parse(_ state: State) throws(SyntaxError) -> [MustacheToken] {
        guard state.depth <= Self.maxDepth else { throw failure(.nestedTooDeeply) }
        var state = state
        var tokens: [MustacheToken] = []
        var whitespace = ""
        while current != nil {
            if state.newLine {
                whitespace = String(read(while: { $0 == " " || $0 == "\t" }))
            }
            let plain = readText(until: state.start)
            // Also right after an opening delimiter, as swift-mustache did: `{{` then a line break is
            // text up to the break, the `{{` dropped.
            if let newline = current, newline.isNewline {
                tokens.append(.text(whitespace + plain + String(newline)))
                state.newLine = true
                advance()
                continue
            }
            if !plain.isEmpty {
                tokens.append(.text(whitespace + plain))
                whitespace = ""
                state.newLine = false
            }
            // A template ending in the opening delimiter ends there (swift-mustache's reading).
            guard let kind = current else { break }
            switch try parseTag(kind, state: &state, tokens: &tokens, whitespace: &whitespace) {
            case .closed: return tokens
            case .next(let newLine): state.newLine = newLine
            }
        }
        guard state.section == nil else { throw failure(.sectionNotClosed) }
        return tokens
    }

    /// Parses the tag whose delimiter was just read and whose first character is `kind`.
    mutating func parseTag(
        _ kind: Character, state: inout State, tokens: inout [MustacheToken], whitespace: inout String
    ) throws(SyntaxError) -> Step {
        switch kind {
        case "#", "^":
            advance()
            let name = try parseName(state)
            let standalone = isStandalone(state)
            if !standalone { flush(&whitespace, into: &tokens) }
            let inner = try parse(state.entering(name, newLine: standalone))
            tokens.append(kind == "#" ? .section(name, inner) : .invertedSection(name, inner))
            return .next(newLine: standalone)
        case "/":
            advance()
            let afterSlash = position
            let name = try parseName(state)
            guard name == state.section else {
                position = afterSlash
                throw failure(.sectionClosedWithWrongName)
            }
            if !isStandalone(state) { flush(&whitespace, into: &tokens) }
            return .closed
        case "!":
            advance()
            try skipComment(state)
            return .next(newLine: isStandalone(state))
        case "{", "&":
            flush(&whitespace, into: &tokens)
            advance()
            let name = try parseName(state)
            if kind == "{" {
                guard read("}") else { throw failure(.tagNotClosed) }
            }
            tokens.append(.variable(name, escaped: false))
            return .next(newLine: false)
        case ">", "<":
            return try parsePartial(kind, state: state, tokens: &tokens, whitespace: &whitespace)
        case "$":
            return try parseBlock(state, tokens: &tokens, whitespace: &whitespace)
        case "=":
            advance()
            try parseSetDelimiter(&state)
            return .next(newLine: isStandalone(state))
        case "%":
            advance()
            tokens.append(try parsePragma(state))
            return .next(newLine: isStandalone(state))
        default:
            flush(&whitespace, into: &tokens)
            tokens.append(.variable(try parseName(state), escaped: true))
            return .next(newLine: false)
        }
    }

    /// `{{> name}}`, `{{>*name}}`, or a parent `{{<name}}...{{/name}}` with the blocks it is given.
    mutating func parsePartial(
        _ kind: Character, state: State, tokens: inout [MustacheToken], whitespace: inout String
    ) throws(SyntaxError) -> Step {
        advance()
        read(while: \.isWhitespace)
        var dynamic = false
        if kind == ">", current == "*" {
            advance()
            dynamic = true
        }
        let name = try parsePartialName(state)
        flush(&whitespace, into: &tokens)
        let standalone = isStandalone(state)
        guard kind == "<" else {
            tokens.append(.partial(dynamic ? "*" + name : name))
            return .next(newLine: standalone)
        }
        var inside = state
        inside.section = MustacheName(path: name)
        inside.newLine = true
        inside.parentTopLevel = true
        inside.depth += 1
        let inner = try parse(inside)
        for token in inner {
            switch token {
            case .blockDefinition, .text: continue
            default: throw failure(.tagInsideParent)
            }
        }
        tokens.append(.parent(name, inner))
        return .next(newLine: standalone)
    }

    /// `{{$name}}...{{/name}}`: a block given to the parent directly around it, or else a block
    /// that renders its default.
    mutating func parseBlock(
        _ state: State, tokens: inout [MustacheToken], whitespace: inout String
    ) throws(SyntaxError) -> Step {
        advance()
        let name = try parseName(state)
        guard name.transforms.isEmpty else { throw failure(.transformOnBlock) }
        if state.parentTopLevel {
            let standalone = isStandalone(state)
            let inner = try parse(state.entering(name, newLine: standalone))
            tokens.append(.blockDefinition(name.path, inner))
            return .next(newLine: standalone)
        }
        // The whitespace in front is kept even when the tag is standalone, and indents the block.
        if !whitespace.isEmpty { tokens.append(.text(whitespace)) }
        let standalone = isStandalone(state)
        let inner = try parse(state.entering(name, newLine: standalone))
        tokens.append(.block(name.path, indentation: whitespace, inner))
        whitespace = ""
        return .next(newLine: standalone)
    }

    /// Moves pending indentation into the tokens as text.
    func flush(_ whitespace: inout String, into tokens: inout [MustacheToken]) {
        guard !whitespace.isEmpty else { return }
        tokens.append(.text(whitespace))
        whitespace = ""
    }

    /// The error for `problem` at the current position.
    func failure(_ problem: SyntaxError.Problem) -> SyntaxError {
        var line = 1
        var column = 1
        for character in text[..<position] {
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return SyntaxError(problem: problem, line: line, column: column)
    }
}
