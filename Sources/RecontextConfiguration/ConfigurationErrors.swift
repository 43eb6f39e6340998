// MARK: - ConfigurationProblem

/// One problem in the configuration file, with where it is.
public struct ConfigurationProblem: Sendable, Hashable, CustomStringConvertible {
    /// The file.
    public var file: String
    /// The line (1-based), or 0 for the file as a whole.
    public var line: Int
    /// The column (1-based), or 0 when unknown.
    public var column: Int
    /// The dotted key path, e.g. `images.mode`; empty for the file as a whole.
    public var key: String
    /// What is wrong.
    public var message: String

    /// Creates a problem.
    /// - Parameters:
    ///   - file: The file.
    ///   - line: The line, 0 for none.
    ///   - column: The column, 0 for none.
    ///   - key: The key path.
    ///   - message: What is wrong.
    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    /// `FILE:LINE: KEY: MESSAGE`, e.g.
    /// `/etc/recontextd/recontextd.yaml:12: images.mode: expected an octal mode like "0640", got "rw"`.
    public var description: String {
        var out = file
        if line > 0 { out += ":\(line)" }
        out += ": "
        if !key.isEmpty { out += "\(key): " }
        return out + message
    }
}

// MARK: - ConfigurationErrors

/// Every problem found in a configuration file.
public struct ConfigurationErrors: Error, Sendable, Hashable, CustomStringConvertible {
    /// The exit status for an invalid configuration (`EX_CONFIG` from sysexits.h).
    public static let exitCode: Int32 = 78

    /// The problems, in file order.
    public var problems: [ConfigurationProblem]

    /// Creates the error.
    /// - Parameter problems: The problems.
    public init(problems: [ConfigurationProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
