import Logging
import RecontextCore
import YAML

// MARK: - ConfigReader

/// Walks the YAML tree, filling a configuration and collecting problems.
struct ConfigReader {
    let file: String
    var problems: [ConfigurationProblem] = []

    init(file: String) {
        self.file = file
    }

    // MARK: Reporting

    mutating func report(_ node: YAMLNode?, _ key: String, _ message: String) {
        let mark = node?.mark
        problems.append(
            ConfigurationProblem(
                file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, message: message))
    }

    /// The problem for a text that YAMLReader refused.
    func yamlProblem(_ error: YAMLError) -> ConfigurationProblem {
        let message: String
        switch error.kind {
        case .duplicateKeys(let keys): message = "key given twice: \(keys.joined(separator: ", "))"
        default: message = "not valid YAML: \(error.message)"
        }
        return ConfigurationProblem(
            file: file, line: error.mark?.line ?? 0, column: error.mark?.column ?? 0, key: "", message: message)
    }

    /// The text of a scalar as written, for messages.
    static func shown(_ node: YAMLNode) -> String {
        switch node {
        case .scalar(let scalar): Validation.quote(scalar.text)
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    // MARK: Structure

    /// The entries of a mapping, reporting non-mappings, non-string keys and unknown keys.
    mutating func entries(_ node: YAMLNode, path: String, known: [String]) -> [(String, YAMLNode)] {
        guard case .mapping(let mapping) = node else {
            if !node.isNull {
                report(
                    node, path, "expected a mapping with keys \(known.joined(separator: ", ")), got \(Self.shown(node))"
                )
            }
            return []
        }
        var result: [(String, YAMLNode)] = []
        for pair in mapping {
            let keyNode = pair.key
            guard case .scalar(let scalar) = keyNode else {
                report(keyNode, path, "keys must be plain names, got \(Self.shown(keyNode))")
                continue
            }
            let key = scalar.text
            guard known.contains(key) else {
                var message = "unknown key \(Validation.quote(key))"
                if let suggestion = Self.suggestion(for: key, among: known) {
                    message += "; did you mean \(Validation.quote(suggestion))?"
                } else {
                    message += " (known: \(known.joined(separator: ", ")))"
                }
                report(keyNode, Self.join(path, key), message)
                continue
            }
            result.append((key, pair.value))
        }
        return result
    }

    /// The closest known key within an edit distance of 2, or sharing a long prefix.
    static func suggestion(for key: String, among known: [String]) -> String? {
        var best: (name: String, distance: Int)?
        for name in known.sorted() {
            let distance = editDistance(key, name)
            if best == nil || distance < best!.distance { best = (name, distance) }
        }
        guard let best else { return nil }
        let allowed: Int = Swift.max(1, Swift.min(2, key.count / 3))
        if best.distance <= allowed { return best.name }
        if let match = known.first(where: { $0.hasPrefix(key) && key.count >= 3 }) { return match }
        return nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution: Int = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                let insertion: Int = current[j - 1] + 1
                let deletion: Int = previous[j] + 1
                current[j] = Swift.min(substitution, insertion, deletion)
            }
            previous = current
        }
        return previous[b.count]
    }

    // MARK: Scalars

    /// A non-null scalar's text, or a problem.
    mutating func scalar(_ node: YAMLNode, _ key: String, expected: String) -> String? {
        guard case .scalar(let scalar) = node,
            !node.isNull || scalar.style == .singleQuoted || scalar.style == .doubleQuoted
        else {
            report(node, key, "expected \(expected), got \(node.isNull ? "nothing" : Self.shown(node))")
            return nil
        }
        return scalar.text
    }

    mutating func string(_ node: YAMLNode, _ key: String, nonEmpty: Bool = true) -> String? {
        guard let text = scalar(node, key, expected: "a string") else { return nil }
        if nonEmpty && text.isEmpty {
            report(node, key, "must not be empty")
            return nil
        }
        return text
    }

    /// A string that is an absolute path without NUL bytes; anything else is reported.
    mutating func absolutePath(_ node: YAMLNode, _ key: String) -> String? {
        guard let path = string(node, key) else { return nil }
        guard path.hasPrefix("/"), !path.contains("\0") else {
            report(node, key, "expected an absolute path, got \(Validation.quote(path))")
            return nil
        }
        return path
    }

    mutating func integer(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = scalar(node, key, expected: "an integer") else { return nil }
        guard let value = Int(text), range.contains(value) else {
            report(
                node, key,
                "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(Validation.quote(text))")
            return nil
        }
        return value
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ key: String, _ type: T.Type) -> T?
    where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        guard let text = scalar(node, key, expected: "one of \(names.joined(separator: ", "))") else { return nil }
        guard let value = T(rawValue: text) else {
            var message = "expected one of \(names.joined(separator: ", ")), got \(Validation.quote(text))"
            if let suggestion = Self.suggestion(for: text, among: names) {
                message += "; did you mean \(Validation.quote(suggestion))?"
            }
            report(node, key, message)
            return nil
        }
        return value
    }

    /// A duration: a plain number in `unit`, or a number with `ms`, `s`, `m` or `h`.
    mutating func duration(_ node: YAMLNode, _ key: String, unit: Duration, unitName: String, allowZero: Bool)
        -> Duration?
    {
        guard let text = scalar(node, key, expected: "a duration") else { return nil }
        let suffixes: [(String, Duration)] = [
            ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600)),
        ]
        var number = text.trimmingWhitespace()
        var scale = unit
        for (suffix, value) in suffixes
        where number.hasSuffix(suffix) && number.dropLast(suffix.count).allSatisfy(\.isNumber) {
            number = String(number.dropLast(suffix.count)).trimmingWhitespace()
            scale = value
            break
        }
        guard let count = Int(number), count >= (allowZero ? 0 : 1), count <= 1_000_000_000 else {
            report(
                node,
                key,
                "expected a whole number of \(unitName)\(allowZero ? "" : " above 0") or a duration like \"500ms\", \"30s\", \"5m\", got \(Validation.quote(text))"
            )
            return nil
        }
        return scale * count
    }

    /// A size: bytes, or a number with `B`, `KiB`, `MiB` or `GiB`.
    mutating func size(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = scalar(node, key, expected: "a size") else { return nil }
        let suffixes: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1)]
        var number = text.trimmingWhitespace()
        var scale = 1
        for (suffix, value) in suffixes where number.hasSuffix(suffix) {
            number = String(number.dropLast(suffix.count)).trimmingWhitespace()
            scale = value
            break
        }
        guard let count = Int(number), count >= 0, count <= Int.max / scale, range.contains(count * scale) else {
            report(
                node,
                key,
                "expected a size like \"16MiB\" (bytes, or B, KiB, MiB, GiB) from \(range.lowerBound) to \(range.upperBound) bytes, got \(Validation.quote(text))"
            )
            return nil
        }
        return count * scale
    }
}

// MARK: - Trimming

extension String {
    /// The string without leading and trailing spaces and tabs (what Foundation's
    /// `CharacterSet.whitespaces` holds: U+0009 and general category Zs) and, with `newlines`,
    /// without line breaks either (U+000A to U+000D, U+0085, U+2028, U+2029).
    func trimmingWhitespace(newlines: Bool = false) -> String {
        func trimmed(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.properties.generalCategory {
            case .spaceSeparator: return true
            case .lineSeparator, .paragraphSeparator: return newlines
            default: return scalar == "\t" || (newlines && (("\n"..."\r").contains(scalar) || scalar == "\u{85}"))
            }
        }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !trimmed($0) }),
            let last = scalars.lastIndex(where: { !trimmed($0) })
        else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
