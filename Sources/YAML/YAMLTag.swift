// MARK: - YAMLTag

/// A node's tag, in full form (`tag:yaml.org,2002:str` for `!!str`).
public struct YAMLTag: Sendable, Hashable, CustomStringConvertible {
    /// The full tag.
    public let rawValue: String

    /// Creates a tag from its full form.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// The full tag.
    public var description: String { rawValue }

    /// `!!str`.
    public static let str = YAMLTag("tag:yaml.org,2002:str")
    /// `!!null`.
    public static let null = YAMLTag("tag:yaml.org,2002:null")
    /// `!!bool`.
    public static let bool = YAMLTag("tag:yaml.org,2002:bool")
    /// `!!int`.
    public static let int = YAMLTag("tag:yaml.org,2002:int")
    /// `!!float`.
    public static let float = YAMLTag("tag:yaml.org,2002:float")
    /// `!!timestamp`.
    public static let timestamp = YAMLTag("tag:yaml.org,2002:timestamp")
    /// `!!merge` (the `<<` key).
    public static let merge = YAMLTag("tag:yaml.org,2002:merge")
    /// `!!value` (the `=` key).
    public static let value = YAMLTag("tag:yaml.org,2002:value")
    /// `!!map`.
    public static let map = YAMLTag("tag:yaml.org,2002:map")
    /// `!!seq`.
    public static let seq = YAMLTag("tag:yaml.org,2002:seq")

    /// The tag of a plain (unquoted, untagged) scalar with text `text`: what a YAML 1.1 reader
    /// reads it as, else ``str``. The rules are PyYAML's (which cloud-init uses), except that a
    /// float needs no dot and its exponent no sign (`1e3` is a float here, a string to PyYAML):
    /// a superset, so that what is ``str`` here is a string to PyYAML too.
    ///
    /// The rules, in order: `bool` (`yes`, `No`, `TRUE`, `off`, ... in three casings), `int`
    /// (`0b1010`, `0o17`, `017`, `-42`, `0x1F`, `1_000`, `1:30`), `float` (`1.5`, `1e3`, `.5`,
    /// `-.inf`, `.NaN`, `1:30.5`), `merge` (`<<`), `null` (nothing, `~`, `null`, `Null`, `NULL`),
    /// `timestamp` (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`), `value` (`=`).
    public static func resolvingPlain(_ text: String) -> YAMLTag {
        let bytes = Array(text.utf8)
        if PlainScalarRules.isBool(text) { return .bool }
        if PlainScalarRules.isInt(bytes) { return .int }
        if PlainScalarRules.isFloat(bytes) { return .float }
        if text == "<<" { return .merge }
        if PlainScalarRules.isNull(text) { return .null }
        if PlainScalarRules.isTimestamp(bytes) { return .timestamp }
        if text == "=" { return .value }
        return .str
    }
}

// MARK: - PlainScalarRules

/// The YAML 1.1 implicit resolution rules of ``YAMLTag/resolvingPlain(_:)`` (regular expressions
/// in the comments), written as matchers over the UTF-8 bytes.
enum PlainScalarRules {
    static let boolWords: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF",
    ]
    static let infinityWords: Set<String> = ["inf", "Inf", "INF"]
    static let nanWords: Set<String> = [".nan", ".NaN", ".NAN"]

    static func isBool(_ text: String) -> Bool { boolWords.contains(text) }

    static func isNull(_ text: String) -> Bool {
        text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// `[-+]?0b[0-1_]+ | [-+]?0o?[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
    /// | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`
    static func isInt(_ bytes: [UInt8]) -> Bool {
        var cursor = Cursor(bytes)
        cursor.skipSign()
        if cursor.take(ascii: "0") {
            if cursor.atEnd { return true }
            if cursor.take(ascii: "b") { return cursor.takeAll(where: isBinaryDigitOrUnderscore) > 0 && cursor.atEnd }
            if cursor.take(ascii: "x") { return cursor.takeAll(where: isHexDigitOrUnderscore) > 0 && cursor.atEnd }
            _ = cursor.take(ascii: "o")
            return cursor.takeAll(where: isOctalDigitOrUnderscore) > 0 && cursor.atEnd
        }
        guard cursor.take(where: { isDigit($0) && $0 != UInt8(ascii: "0") }) else { return false }
        cursor.takeAll(where: isDigitOrUnderscore)
        if cursor.atEnd { return true }
        return cursor.takeSexagesimalGroups() && cursor.atEnd
    }

    /// `[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)?
    /// | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
    static func isFloat(_ bytes: [UInt8]) -> Bool {
        if nanWords.contains(String(decoding: bytes, as: UTF8.self)) { return true }
        var cursor = Cursor(bytes)
        cursor.skipSign()
        if cursor.take(ascii: ".") {
            let afterDot = cursor
            // `.5` and `.5e+3` (no sign before the dot; the exponent needs one).
            if afterDot.index == 1, cursor.takeAll(where: isDigitOrUnderscore) > 0 {
                if cursor.atEnd { return true }
                return cursor.take(where: isExponentMark) && cursor.skipSign() && cursor.takeAll(where: isDigit) > 0
                    && cursor.atEnd
            }
            return infinityWords.contains(String(decoding: bytes[afterDot.index...], as: UTF8.self))
        }
        guard cursor.take(where: isDigit) else { return false }
        cursor.takeAll(where: isDigitOrUnderscore)
        if cursor.peek == UInt8(ascii: ":") {
            guard cursor.takeSexagesimalGroups(), cursor.take(ascii: ".") else { return false }
            cursor.takeAll(where: isDigitOrUnderscore)
            return cursor.atEnd
        }
        if cursor.take(ascii: ".") { cursor.takeAll(where: isDigitOrUnderscore) }
        if cursor.take(where: isExponentMark) {
            cursor.skipSign()
            guard cursor.takeAll(where: isDigit) > 0 else { return false }
        }
        return cursor.atEnd
    }

    /// `[0-9]{4}-[0-9]{2}-[0-9]{2}`, or `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}`
    /// `(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?`
    static func isTimestamp(_ bytes: [UInt8]) -> Bool {
        var cursor = Cursor(bytes)
        guard cursor.takeAll(where: isDigit) == 4, cursor.take(ascii: "-") else { return false }
        let month = cursor.takeAll(where: isDigit)
        guard month == 1 || month == 2, cursor.take(ascii: "-") else { return false }
        let day = cursor.takeAll(where: isDigit)
        guard day == 1 || day == 2 else { return false }
        if cursor.atEnd { return month == 2 && day == 2 }
        if !cursor.take(where: { $0 == UInt8(ascii: "T") || $0 == UInt8(ascii: "t") }) {
            guard cursor.takeAll(where: isBlank) > 0 else { return false }
        }
        let hour = cursor.takeAll(where: isDigit)
        guard hour == 1 || hour == 2, cursor.take(ascii: ":"), cursor.takeAll(where: isDigit) == 2,
            cursor.take(ascii: ":"), cursor.takeAll(where: isDigit) == 2
        else { return false }
        if cursor.take(ascii: ".") { cursor.takeAll(where: isDigit) }
        if cursor.atEnd { return true }
        cursor.takeAll(where: isBlank)
        if cursor.take(ascii: "Z") { return cursor.atEnd }
        guard cursor.skipSign() else { return false }
        let zoneHour = cursor.takeAll(where: isDigit)
        guard zoneHour == 1 || zoneHour == 2 else { return false }
        if cursor.take(ascii: ":") {
            guard cursor.takeAll(where: isDigit) == 2 else { return false }
        }
        return cursor.atEnd
    }

    // MARK: Character classes

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    static func isDigitOrUnderscore(_ byte: UInt8) -> Bool { isDigit(byte) || byte == UInt8(ascii: "_") }
    static func isBinaryDigitOrUnderscore(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "0") || byte == UInt8(ascii: "1") || byte == UInt8(ascii: "_")
    }
    static func isOctalDigitOrUnderscore(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7")) || byte == UInt8(ascii: "_")
    }
    static func isHexDigitOrUnderscore(_ byte: UInt8) -> Bool {
        isDigitOrUnderscore(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }
    static func isExponentMark(_ byte: UInt8) -> Bool { byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") }
    static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    // MARK: Cursor

    /// A position in the bytes being matched.
    struct Cursor {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[index] }

        /// Takes one byte if it matches.
        mutating func take(where predicate: (UInt8) -> Bool) -> Bool {
            guard let byte = peek, predicate(byte) else { return false }
            index += 1
            return true
        }

        /// Takes `character` if it comes next.
        mutating func take(ascii character: Unicode.Scalar) -> Bool {
            take(where: { $0 == UInt8(ascii: character) })
        }

        /// Takes every byte that matches, returning how many.
        @discardableResult
        mutating func takeAll(where predicate: (UInt8) -> Bool) -> Int {
            let start = index
            while let byte = peek, predicate(byte) { index += 1 }
            return index - start
        }

        /// Takes an optional `+` or `-`, returning whether there was one.
        @discardableResult
        mutating func skipSign() -> Bool {
            take(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
        }

        /// `(:[0-5]?[0-9])+`: one or more groups, each a colon and one digit, or two digits of
        /// which the first is at most 5.
        mutating func takeSexagesimalGroups() -> Bool {
            var groups = 0
            while take(ascii: ":") {
                let start = index
                let count = takeAll(where: PlainScalarRules.isDigit)
                guard count == 1 || (count == 2 && bytes[start] <= UInt8(ascii: "5")) else { return false }
                groups += 1
            }
            return groups > 0
        }
    }
}
