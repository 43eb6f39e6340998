// MARK: - XMLEscaping

/// Escaping for the XML that recontextd writes: the one escaper for text and attribute values.
public enum XMLEscaping {
    /// Whether every character can be written as XML 1.0 text (character references included).
    ///
    /// XML 1.0 allows tab, newline, carriage return, U+0020-U+D7FF, U+E000-U+FFFD and above U+FFFF.
    public static func isRepresentable(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            switch scalar.value {
            case 0x9, 0xA, 0xD: true
            case 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
            default: false
            }
        }
    }

    /// Character data: `&`, `<`, `>` escaped; a carriage return as `&#13;` so that a parser's
    /// line-end handling keeps it.
    public static func text(_ text: String) -> String {
        escape(text, attribute: false)
    }

    /// An attribute value, for single or double quotes: also `"` and `'` escaped, and tab,
    /// newline and carriage return as character references (attribute-value normalisation would
    /// turn them into spaces).
    public static func attribute(_ text: String) -> String {
        escape(text, attribute: true)
    }

    private static func escape(_ text: String, attribute: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\r": out += "&#13;"
            case "\"" where attribute: out += "&quot;"
            case "'" where attribute: out += "&apos;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
