import FoundationEssentials
import Logging
import RecontextCore
import YAML

#if canImport(Glibc)
    import Glibc
#endif

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
        let bytes: [UInt8]
        switch readFile(path, limit: maxFileBytes) {
        case .success(let read):
            guard read.size <= maxFileBytes else {
                throw failure("the file is \(read.size) bytes, more than \(maxFileBytes)")
            }
            bytes = read.bytes
        case .failure(let error): throw failure("cannot read the file: \(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
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
        let root: YAMLNode?
        do {
            root = try YAMLReader.compose(yaml)
        } catch {
            reader.problems.append(reader.yamlProblem(error))
            throw ConfigurationErrors(problems: reader.problems)
        }
        if let root, !root.isNull {
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
            let text = String(data: data, encoding: .utf8)?.trimmingWhitespace(newlines: true),
            !text.isEmpty
        {
            return text
        }
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty ? "localhost" : name
    }

    /// The bytes of the file at `path` with its size; or why not, in the C library's words
    /// (`strerror`). The corresponding C functions are `open`, `fstat` and `read`.
    ///
    /// A file larger than `limit` is not read whole: for a regular file `size` is `fstat`'s and
    /// `bytes` is empty; for anything else (a pipe) reading stops past `limit`, and `size` is
    /// what was read. Either way `size > limit` says it is too large.
    static func readFile(_ path: String, limit: Int) -> Result<(bytes: [UInt8], size: Int), ReadError> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(ReadError(errno: errno)) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return .failure(ReadError(errno: errno)) }
        let isRegular = status.st_mode & S_IFMT == S_IFREG
        if isRegular, status.st_size > limit { return .success(([], Int(status.st_size))) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count <= limit {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(ReadError(errno: errno))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return .success((bytes, isRegular ? max(Int(status.st_size), bytes.count) : bytes.count))
    }

    /// A failed `open` or `read`: the `errno`, shown as `strerror` words.
    struct ReadError: Error, CustomStringConvertible {
        let errno: Int32
        var description: String { String(cString: strerror(errno)) }
    }
}
