// MARK: - Reading the parts of a tag

extension MustacheParser {
    /// The character at the position, `nil` at the end.
    var current: Character? { position < text.endIndex ? text[position] : nil }

    mutating func advance() {
        position = text.index(after: position)
    }

    /// Reads the characters that satisfy `predicate`.
    @discardableResult
    mutating func read(while predicate: (Character) -> Bool) -> Substring {
        let start = position
        while let character = current, predicate(character) { advance() }
        return text[start..<position]
    }

    /// Reads up to the first character that satisfies `predicate`; `nil`, and nothing read, when
    /// none does before the end.
    mutating func readUntil(_ predicate: (Character) -> Bool) -> Substring? {
        let start = position
        while let character = current {
            if predicate(character) { return text[start..<position] }
            advance()
        }
        position = start
        return nil
    }

    /// Reads `string` if it comes next; `false`, and nothing read, when it does not.
    mutating func read(_ string: String) -> Bool {
        let start = position
        for expected in string {
            guard current == expected else {
                position = start
                return false
            }
            advance()
        }
        return true
    }

    /// Reads text up to a line break (`\n` or `\r\n`, not read) or past the opening delimiter.
    mutating func readText(until delimiter: String) -> String {
        guard let first = delimiter.first else { return "" }
        var plain = ""
        var start = position
        while let character = current, character != "\n", character != "\r\n" {
            guard character == first else {
                advance()
                continue
            }
            plain += text[start..<position]
            if read(delimiter) { return plain }
            // swift-mustache appended the delimiter's character, not the text's (they are equal as
            // `Character`s, which compares canonical equivalence).
            plain.append(first)
            advance()
            start = position
        }
        return plain + text[start..<position]
    }

    /// Whether the tag just read stands alone on its line: the line started before it (only
    /// whitespace in front) and holds only spaces and tabs after it. The line break after it is read.
    mutating func isStandalone(_ state: State) -> Bool {
        guard state.newLine else { return false }
        guard current != nil else { return true }
        let start = position
        read(while: { $0 == " " || $0 == "\t" })
        if let newline = current, newline.isNewline {
            advance()
            return true
        }
        position = start
        return false
    }

    /// A name and its transforms, then the closing delimiter.
    mutating func parseName(_ state: State) throws(SyntaxError) -> MustacheName {
        read(while: \.isWhitespace)
        let written = read(while: Self.isNameOrParenthesis)
        read(while: \.isWhitespace)
        guard read(state.end) else { throw failure(.tagNotClosed) }

        var rest = written[...]
        let path = rest.prefix(while: Self.isNameCharacter)
        rest = rest.dropFirst(path.count)
        guard !rest.isEmpty else { return MustacheName(path: String(written)) }
        guard rest.first == "(" else { throw failure(.tagNotClosed) }
        rest = rest.dropFirst()
        var transforms = [String(path)]
        while true {
            let inner = rest.prefix(while: Self.isNameCharacter)
            rest = rest.dropFirst(inner.count)
            switch rest.first {
            case "(":
                rest = rest.dropFirst()
                transforms.append(String(inner))
            case ")":
                let closing = rest.prefix { $0 == ")" }.count
                guard closing == transforms.count, closing == rest.count else { throw failure(.tagNotClosed) }
                return MustacheName(path: String(inner), transforms: transforms)
            default:
                throw failure(.tagNotClosed)
            }
        }
    }

    /// The name of a partial or parent, then the closing delimiter.
    mutating func parsePartialName(_ state: State) throws(SyntaxError) -> String {
        read(while: \.isWhitespace)
        let name = read(while: { Self.isNameOrParenthesis($0) || $0 == "/" })
        read(while: \.isWhitespace)
        guard read(state.end) else { throw failure(.tagNotClosed) }
        return String(name)
    }

    /// Skips a comment's text and the closing delimiter.
    ///
    /// Matched as swift-mustache did: after a partial match, the character that broke it is not
    /// tried as the start of a new one. Only custom delimiters can tell: with `%>`, the comment
    /// `<%! a %%>` does not end at `%%>`.
    mutating func skipComment(_ state: State) throws(SyntaxError) {
        let start = position
        let end = Array(state.end)
        var matched = 0
        while let character = current {
            if character == end[matched] {
                matched += 1
                if matched == end.count {
                    advance()
                    return
                }
            } else {
                matched = 0
            }
            advance()
        }
        position = start
        throw failure(.tagNotClosed)
    }

    /// `{{=<% %>=}}`, after the `=`: the new delimiters, in effect to the end of the section.
    mutating func parseSetDelimiter(_ state: inout State) throws(SyntaxError) {
        read(while: \.isWhitespace)
        guard let start = readUntil(\.isWhitespace) else { throw failure(.malformedSetDelimiter) }
        read(while: \.isWhitespace)
        guard let end = readUntil({ $0 == "=" || $0.isWhitespace }) else { throw failure(.malformedSetDelimiter) }
        read(while: \.isWhitespace)
        guard read("="), read(state.end), !start.isEmpty, !end.isEmpty else {
            throw failure(.malformedSetDelimiter)
        }
        state.start = String(start)
        state.end = String(end)
        state.parentTopLevel = false
    }

    /// `{{%CONTENT_TYPE: TEXT}}` or `HTML`, after the `%`.
    mutating func parsePragma(_ state: State) throws(SyntaxError) -> MustacheToken {
        read(while: \.isWhitespace)
        let key = read(while: Self.isNameCharacter)
        read(while: \.isWhitespace)
        guard read(":") else { throw failure(.malformedPragma) }
        read(while: \.isWhitespace)
        let value = read(while: Self.isNameCharacter)
        read(while: \.isWhitespace)
        guard read(state.end), !key.isEmpty, !value.isEmpty else { throw failure(.malformedPragma) }
        switch (key, value) {
        case ("CONTENT_TYPE", "TEXT"): return .contentType(html: false)
        case ("CONTENT_TYPE", "HTML"): return .contentType(html: true)
        default: throw failure(.unknownPragma)
        }
    }

    /// ASCII letters and digits and `.-_?*`: what a name is made of.
    static func isNameCharacter(_ character: Character) -> Bool {
        guard let byte = character.asciiValue else { return false }
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "._-?*".utf8.contains(byte)
        }
    }

    /// A name character or a parenthesis (transforms).
    static func isNameOrParenthesis(_ character: Character) -> Bool {
        isNameCharacter(character) || character == "(" || character == ")"
    }
}
