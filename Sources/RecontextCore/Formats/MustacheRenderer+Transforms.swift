// MARK: - Transforms

extension MustacheRenderer {
    /// The transforms, as an error message lists them.
    static let transforms = ["uppercased", "lowercased", "capitalized", "reversed", "empty"]

    /// Scalars that Unicode calls case-ignorable but Foundation's `capitalized` does not (it ends a
    /// word at them): `.`, `:`, `·` and their look-alikes, `‘`, `․`, `‧`, and the fullwidth `'`.
    static let wordBreakingIgnorables: Set<UInt32> = [
        0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E,
        0xFF1A,
    ]

    /// `transform` applied to `value`; `nil`, with a problem recorded, when it does not apply.
    ///
    /// An undefined value stays undefined (it is reported where it is rendered).
    mutating func apply(_ transform: String, to value: Value) -> Value? {
        guard Self.transforms.contains(transform) else {
            problems.append(
                "unknown transform \(transform)(...) (known: \(Self.transforms.joined(separator: ", ")))")
            if case .missing = value { return value }
            return nil
        }
        switch value {
        case .text(let text, let name):
            let name = "\(transform)(\(name))"
            switch transform {
            case "uppercased": return .text(text.uppercased(), name: name)
            case "lowercased": return .text(text.lowercased(), name: name)
            case "capitalized": return .text(Self.capitalized(text), name: name)
            case "reversed": return .text(String(text.reversed()), name: name)
            default: return .flag(text.isEmpty, name: name)
            }
        case .missing:
            return value
        case .group(let group):
            problems.append("\(transform)(...) of the group \(group) (name a variable, e.g. \(group).name)")
        case .root:
            problems.append("\(transform)(...) of the whole context")
        case .flag(_, let name):
            problems.append("\(transform)(...) of \(name), which is true or false, not text")
        }
        return nil
    }

    /// `text` with each word's first letter in title case and its other letters in lower case, as
    /// Foundation's `capitalized` gives it.
    ///
    /// A word starts after anything but a letter or a case-ignorable scalar (apostrophes, combining
    /// marks...; see ``wordBreakingIgnorables``). Upper-case and title-case letters count as upper.
    static func capitalized(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        var inWord = false
        for scalar in text.unicodeScalars {
            let properties = scalar.properties
            switch properties.generalCategory {
            case .uppercaseLetter, .titlecaseLetter:
                result += inWord ? properties.lowercaseMapping : String(scalar)
                inWord = true
            case .lowercaseLetter:
                result += inWord ? String(scalar) : properties.titlecaseMapping
                inWord = true
            default:
                result.unicodeScalars.append(scalar)
                if !properties.isCaseIgnorable || wordBreakingIgnorables.contains(scalar.value) {
                    inWord = false
                }
            }
        }
        return result
    }
}
