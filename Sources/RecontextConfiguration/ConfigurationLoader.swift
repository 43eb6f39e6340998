import Foundation
import Logging
import RecontextCore
import Yams

// MARK: - ConfigurationLoader

/// Reads and validates the daemon configuration (YAML, see ``DaemonConfiguration`` for every key).
///
/// The whole file is checked and every problem is reported, each with file, line and key path:
/// unknown keys (with a suggestion when one is close), values of the wrong type or out of range,
/// and combinations that make no sense. `recontextd run` and `recontextd check-config` both use
/// this loader; on failure the CLI prints ``ConfigurationErrors/description`` and exits with
/// ``ConfigurationErrors/exitCode`` (78).
public enum ConfigurationLoader {
    /// Largest configuration file accepted.
    public static let maxFileBytes = 1 << 20

    /// Reads and validates a configuration file.
    /// - Parameters:
    ///   - path: The file, by default ``DaemonConfiguration/defaultPath``.
    ///   - hostName: The default for `host.name`; `nil` reads the machine's hostname
    ///     (``systemHostName()``).
    ///   - allowMissing: Whether a missing file means "all defaults" rather than an error.
    /// - Returns: The configuration.
    /// - Throws: ``ConfigurationErrors`` with every problem found.
    public static func load(
        path: String = DaemonConfiguration.defaultPath,
        hostName: String? = nil,
        allowMissing: Bool = false
    ) throws(ConfigurationErrors) -> DaemonConfiguration {
        func failure(_ message: String) -> ConfigurationErrors {
            ConfigurationErrors(problems: [
                ConfigurationProblem(file: path, line: 0, column: 0, key: "", message: message)
            ])
        }
        guard FileManager.default.fileExists(atPath: path) else {
            if allowMissing { return try parse(yaml: "", file: path, hostName: hostName) }
            throw failure("no such file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw failure("cannot read the file: \(error.localizedDescription)")
        }
        guard data.count <= maxFileBytes else {
            throw failure("the file is \(data.count) bytes, more than \(maxFileBytes)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw failure("the file is not valid UTF-8")
        }
        return try parse(yaml: text, file: path, hostName: hostName)
    }

    /// Validates configuration text.
    /// - Parameters:
    ///   - yaml: The YAML text.
    ///   - file: The file name used in problems.
    ///   - hostName: The default for `host.name`; `nil` reads the machine's hostname.
    /// - Returns: The configuration.
    /// - Throws: ``ConfigurationErrors`` with every problem found.
    public static func parse(yaml: String, file: String, hostName: String? = nil) throws(ConfigurationErrors)
        -> DaemonConfiguration
    {
        var reader = ConfigReader(file: file)
        var config = DaemonConfiguration(hostName: hostName ?? systemHostName())
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            reader.problems.append(reader.yamlProblem(error))
            throw ConfigurationErrors(problems: reader.problems)
        }
        if let root, root.null == nil {
            reader.readRoot(root, into: &config)
        }
        if !reader.problems.isEmpty {
            throw ConfigurationErrors(problems: reader.problems.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return config
    }

    /// The machine's hostname (of this UTS namespace): `/proc/sys/kernel/hostname`, else
    /// `ProcessInfo.hostName`, else `localhost`.
    public static func systemHostName() -> String {
        if let data = FileManager.default.contents(atPath: "/proc/sys/kernel/hostname"),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        {
            return text
        }
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty ? "localhost" : name
    }
}
