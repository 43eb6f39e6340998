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

// MARK: - ConfigReader

/// Walks the YAML tree, filling a configuration and collecting problems.
struct ConfigReader {
    let file: String
    var problems: [ConfigurationProblem] = []

    init(file: String) {
        self.file = file
    }

    // MARK: Reporting

    mutating func report(_ node: Node?, _ key: String, _ message: String) {
        let mark = node?.mark
        problems.append(
            ConfigurationProblem(
                file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, message: message))
    }

    func yamlProblem(_ error: Error) -> ConfigurationProblem {
        func problem(_ mark: Mark?, _ message: String) -> ConfigurationProblem {
            ConfigurationProblem(
                file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: "", message: message)
        }
        guard let error = error as? YamlError else { return problem(nil, "not valid YAML: \(error)") }
        switch error {
        case .scanner(_, let message, let mark, _), .parser(_, let message, let mark, _),
            .composer(_, let message, let mark, _):
            return problem(mark, "not valid YAML: \(message)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return problem(context.mark, "key given twice: \(duplicates.joined(separator: ", "))")
        case .reader(let message, _, _, _):
            return problem(nil, "not valid YAML: \(message)")
        default:
            return problem(nil, "not valid YAML: \(error)")
        }
    }

    /// The text of a scalar as written, for messages.
    static func shown(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): Validation.quote(scalar.string)
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    // MARK: Structure

    /// The entries of a mapping, reporting non-mappings, non-string keys and unknown keys.
    mutating func entries(_ node: Node, path: String, known: [String]) -> [(String, Node)] {
        guard case .mapping(let mapping) = node else {
            if node.null == nil {
                report(
                    node, path, "expected a mapping with keys \(known.joined(separator: ", ")), got \(Self.shown(node))"
                )
            }
            return []
        }
        var result: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(keyNode, path, "keys must be plain names, got \(Self.shown(keyNode))")
                continue
            }
            let key = scalar.string
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
            result.append((key, value))
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
    mutating func scalar(_ node: Node, _ key: String, expected: String) -> String? {
        guard case .scalar(let scalar) = node,
            node.null == nil || scalar.style == .singleQuoted || scalar.style == .doubleQuoted
        else {
            report(node, key, "expected \(expected), got \(node.null != nil ? "nothing" : Self.shown(node))")
            return nil
        }
        return scalar.string
    }

    mutating func string(_ node: Node, _ key: String, nonEmpty: Bool = true) -> String? {
        guard let text = scalar(node, key, expected: "a string") else { return nil }
        if nonEmpty && text.isEmpty {
            report(node, key, "must not be empty")
            return nil
        }
        return text
    }

    mutating func integer(_ node: Node, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = scalar(node, key, expected: "an integer") else { return nil }
        guard let value = Int(text), range.contains(value) else {
            report(
                node, key,
                "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(Validation.quote(text))")
            return nil
        }
        return value
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ key: String, _ type: T.Type) -> T?
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
    mutating func duration(_ node: Node, _ key: String, unit: Duration, unitName: String, allowZero: Bool) -> Duration?
    {
        guard let text = scalar(node, key, expected: "a duration") else { return nil }
        let suffixes: [(String, Duration)] = [
            ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600)),
        ]
        var number = text.trimmingCharacters(in: .whitespaces)
        var scale = unit
        for (suffix, value) in suffixes
        where number.hasSuffix(suffix) && number.dropLast(suffix.count).allSatisfy(\.isNumber) {
            number = String(number.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
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
    mutating func size(_ node: Node, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = scalar(node, key, expected: "a size") else { return nil }
        let suffixes: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1)]
        var number = text.trimmingCharacters(in: .whitespaces)
        var scale = 1
        for (suffix, value) in suffixes where number.hasSuffix(suffix) {
            number = String(number.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
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

    // MARK: Sections

    mutating func readRoot(_ root: Node, into config: inout DaemonConfiguration) {
        let sections = ["libvirt", "images", "host", "context", "pipeline", "limits", "log", "metrics"]
        for (key, value) in entries(root, path: "", known: sections) {
            switch key {
            case "libvirt": readLibvirt(value, into: &config.libvirt)
            case "images": readImages(value, into: &config.images)
            case "host": readHost(value, into: &config.host, limits: config.limits)
            case "context": readContext(value, into: &config.context)
            case "pipeline": readPipeline(value, into: &config.pipeline)
            case "limits": readLimits(value, into: &config.limits)
            case "metrics": readMetrics(value, into: &config.metrics)
            default: readLog(value, into: &config)
            }
        }
    }

    mutating func readLibvirt(_ node: Node, into libvirt: inout DaemonConfiguration.Libvirt) {
        for (key, value) in entries(node, path: "libvirt", known: ["uri", "reconnect-max-backoff"]) {
            let path = "libvirt.\(key)"
            switch key {
            case "uri":
                if let uri = string(value, path) {
                    if uri.contains(where: \.isWhitespace) || !uri.contains(":") {
                        report(
                            value, path, "expected a libvirt URI like \"qemu:///system\", got \(Validation.quote(uri))")
                    } else {
                        libvirt.uri = uri
                    }
                }
            default:
                if let duration = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: false) {
                    libvirt.reconnectMaxBackoff = duration
                }
            }
        }
    }

    mutating func readImages(_ node: Node, into images: inout DaemonConfiguration.Images) {
        for (key, value) in entries(node, path: "images", known: ["directory", "mode", "group", "max-size", "shared"]) {
            let path = "images.\(key)"
            switch key {
            case "directory":
                if let directory = string(value, path) {
                    if !directory.hasPrefix("/") || directory.contains("\0") {
                        report(value, path, "expected an absolute path, got \(Validation.quote(directory))")
                    } else {
                        images.directory = directory
                    }
                }
            case "mode":
                if let text = scalar(value, path, expected: "an octal mode like \"0640\"") {
                    if let mode = Validation.mode(text) {
                        images.mode = mode
                    } else {
                        report(value, path, "expected an octal mode like \"0640\", got \(Validation.quote(text))")
                    }
                }
            case "group":
                if value.null != nil, case .scalar(let scalar) = value, scalar.style == .plain {
                    images.group = nil
                } else if let group = string(value, path) {
                    if Self.isGroupName(group) {
                        images.group = group
                    } else {
                        report(
                            value, path,
                            "expected a group name like \"libvirt-qemu\" or a numeric gid, got \(Validation.quote(group))"
                        )
                    }
                }
            case "shared":
                if let text = scalar(value, path, expected: "true or false") {
                    switch text.lowercased() {
                    case "true", "yes", "on": images.shared = true
                    case "false", "no", "off": images.shared = false
                    default: report(value, path, "expected true or false, got \(Validation.quote(text))")
                    }
                }
            default:
                if let size = size(value, path, range: (64 << 10)...(1 << 32)) {
                    images.maxSize = size
                }
            }
        }
    }

    static func isGroupName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 32 else { return false }
        if name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) { return true }
        for (index, byte) in name.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
                if index == 0 { return false }
            case UInt8(ascii: "$"): if index != name.utf8.count - 1 { return false }
            default: return false
            }
        }
        return true
    }

    mutating func readHost(_ node: Node, into host: inout HostFacts, limits: MetadataLimits) {
        var secretNodes: [(String, Node)] = []
        for (key, value) in entries(node, path: "host", known: ["name", "variables", "secret-variables"]) {
            let path = "host.\(key)"
            switch key {
            case "name":
                if let name = string(value, path) {
                    if name.utf8.count > 253
                        || name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == " " })
                    {
                        report(
                            value,
                            path,
                            "expected a host name without spaces or control characters, at most 253 bytes, got \(Validation.quote(name))"
                        )
                    } else {
                        host.name = name
                    }
                }
            case "variables":
                guard case .mapping(let mapping) = value else {
                    if value.null == nil {
                        report(value, path, "expected a mapping of variable names to strings, got \(Self.shown(value))")
                    }
                    continue
                }
                var variables: [String: String] = [:]
                for (keyNode, valueNode) in mapping {
                    guard case .scalar(let keyScalar) = keyNode else {
                        report(keyNode, path, "variable names must be plain strings, got \(Self.shown(keyNode))")
                        continue
                    }
                    let name = keyScalar.string
                    let variablePath = "\(path).\(name)"
                    if let problem = Validation.variableName(name, maxLength: limits.maxNameLength) {
                        report(keyNode, variablePath, problem)
                        continue
                    }
                    if Validation.reservedHostVariableNames.contains(name) {
                        report(
                            keyNode,
                            variablePath,
                            "\(Validation.quote(name)) is reserved (reserved: \(Validation.reservedHostVariableNames.sorted().joined(separator: ", ")))"
                        )
                        continue
                    }
                    if let text = string(valueNode, variablePath, nonEmpty: false) {
                        variables[name] = text
                    }
                }
                host.variables = variables
            default:
                guard case .sequence(let sequence) = value else {
                    if value.null == nil {
                        report(value, path, "expected a list of variable names, got \(Self.shown(value))")
                    }
                    continue
                }
                for item in sequence {
                    if let name = string(item, path) { secretNodes.append((name, item)) }
                }
            }
        }
        var secrets: Set<String> = []
        for (name, node) in secretNodes {
            if host.variables[name] == nil {
                report(node, "host.secret-variables", "\(Validation.quote(name)) is not one of host.variables")
            } else {
                secrets.insert(name)
            }
        }
        host.secretVariables = secrets
    }

    mutating func readContext(_ node: Node, into context: inout DaemonConfiguration.Context) {
        for (key, value) in entries(
            node, path: "context", known: ["default-format", "managed", "device", "instance-id"])
        {
            let path = "context.\(key)"
            switch key {
            case "default-format":
                if let format = choice(value, path, ContextFormat.self) { context.defaultFormat = format }
            case "managed":
                if let managed = choice(value, path, DaemonConfiguration.ManagedDomains.self) {
                    context.managed = managed
                }
            case "instance-id":
                if let policy = choice(value, path, InstanceIDPolicy.self) { context.instanceID = policy }
            default:
                for (deviceKey, deviceValue) in entries(value, path: path, known: ["mode", "target"]) {
                    let devicePath = "\(path).\(deviceKey)"
                    if deviceKey == "mode" {
                        if let mode = choice(deviceValue, devicePath, DaemonConfiguration.DeviceMode.self) {
                            context.device.mode = mode
                        }
                    } else if deviceValue.null != nil, case .scalar(let scalar) = deviceValue, scalar.style == .plain {
                        context.device.target = nil
                    } else if let target = string(deviceValue, devicePath) {
                        if let problem = Validation.deviceTarget(target) {
                            report(deviceValue, devicePath, problem)
                        } else {
                            context.device.target = target
                        }
                    }
                }
            }
        }
    }

    mutating func readPipeline(_ node: Node, into pipeline: inout DaemonConfiguration.Pipeline) {
        for (key, value) in entries(
            node, path: "pipeline",
            known: ["concurrency", "reconcile-interval", "collect-grace", "shutdown-budget", "retry"])
        {
            let path = "pipeline.\(key)"
            switch key {
            case "concurrency":
                if let count = integer(value, path, range: 1...256) { pipeline.concurrency = count }
            case "reconcile-interval":
                if let interval = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: true) {
                    pipeline.reconcileInterval = interval == .zero ? nil : interval
                }
            case "collect-grace":
                if let grace = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: true) {
                    pipeline.collectGrace = grace
                }
            case "shutdown-budget":
                // Below the unit's TimeoutStopSec=60s, so that systemd never SIGKILLs mid-swap.
                if let budget = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: true) {
                    if budget >= .seconds(55) {
                        report(value, path, "must be below 55 s (the unit's TimeoutStopSec is 60 s)")
                    } else {
                        pipeline.shutdownBudget = budget
                    }
                }
            default:
                var initialNode: Node?
                for (retryKey, retryValue) in entries(
                    value, path: path, known: ["attempts", "initial-backoff", "max-backoff"])
                {
                    let retryPath = "\(path).\(retryKey)"
                    switch retryKey {
                    case "attempts":
                        if let attempts = integer(retryValue, retryPath, range: 1...100) {
                            pipeline.retry.attempts = attempts
                        }
                    case "initial-backoff":
                        initialNode = retryValue
                        if let backoff = duration(
                            retryValue, retryPath, unit: .milliseconds(1), unitName: "milliseconds", allowZero: false)
                        {
                            pipeline.retry.initialBackoff = backoff
                        }
                    default:
                        if let backoff = duration(
                            retryValue, retryPath, unit: .milliseconds(1), unitName: "milliseconds", allowZero: false)
                        {
                            pipeline.retry.maxBackoff = backoff
                        }
                    }
                }
                if pipeline.retry.initialBackoff > pipeline.retry.maxBackoff {
                    report(
                        initialNode ?? value,
                        "\(path).initial-backoff",
                        "initial-backoff (\(pipeline.retry.initialBackoff)) is longer than max-backoff (\(pipeline.retry.maxBackoff))"
                    )
                }
            }
        }
    }

    mutating func readLimits(_ node: Node, into limits: inout MetadataLimits) {
        let known = [
            "max-files", "max-file-size", "max-total-size", "max-path-length", "max-path-depth", "max-depth",
            "max-variables",
            "max-name-length", "max-metadata-size",
        ]
        for (key, value) in entries(node, path: "limits", known: known) {
            let path = "limits.\(key)"
            switch key {
            case "max-files": if let v = integer(value, path, range: 0...100_000) { limits.maxFiles = v }
            case "max-file-size": if let v = size(value, path, range: 1...(1 << 30)) { limits.maxFileBytes = v }
            case "max-total-size": if let v = size(value, path, range: 1...(1 << 32)) { limits.maxTotalBytes = v }
            case "max-path-length": if let v = integer(value, path, range: 1...4096) { limits.maxPathLength = v }
            case "max-path-depth": if let v = integer(value, path, range: 1...64) { limits.maxPathComponents = v }
            case "max-depth": if let v = integer(value, path, range: 2...64) { limits.maxDepth = v }
            case "max-variables": if let v = integer(value, path, range: 0...100_000) { limits.maxVariables = v }
            case "max-name-length": if let v = integer(value, path, range: 1...1024) { limits.maxNameLength = v }
            default: if let v = size(value, path, range: 1...(1 << 32)) { limits.maxMetadataBytes = v }
            }
        }
    }

    mutating func readLog(_ node: Node, into config: inout DaemonConfiguration) {
        for (key, value) in entries(node, path: "log", known: ["level", "target"]) {
            if key == "level" {
                if let parsed = choice(value, "log.level", Logger.Level.self) { config.logLevel = parsed }
            } else if let parsed = choice(value, "log.target", DaemonConfiguration.LogTarget.self) {
                config.logTarget = parsed
            }
        }
    }

    /// Whether `node` is written as nothing (or `null`, `~`), not as a quoted string.
    static func isPlainNull(_ node: Node) -> Bool {
        guard node.null != nil, case .scalar(let scalar) = node else { return false }
        return scalar.style == .plain
    }

    mutating func readMetrics(_ node: Node, into metrics: inout DaemonConfiguration.Metrics) {
        for (key, value) in entries(node, path: "metrics", known: ["textfile", "interval", "listen"]) {
            let path = "metrics.\(key)"
            // An empty value (`textfile:`) means off, as when the key is absent.
            let isOff = Self.isPlainNull(value)
            switch key {
            case "textfile":
                if isOff {
                    metrics.textfile = nil
                } else if let file = string(value, path) {
                    let name = file.split(separator: "/").last.map(String.init) ?? ""
                    if !file.hasPrefix("/") || file.contains("\0") || file.hasSuffix("/") {
                        report(value, path, "expected an absolute file path, got \(Validation.quote(file))")
                    } else if !name.hasSuffix(".prom") || name.hasPrefix(".") {
                        report(
                            value, path,
                            "node_exporter's textfile collector reads only files named *.prom, got \(Validation.quote(name))"
                        )
                    } else {
                        metrics.textfile = file
                    }
                }
            case "interval":
                if let interval = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: false) {
                    metrics.interval = interval
                }
            default:
                if isOff {
                    metrics.listen = nil
                } else if let text = string(value, path) {
                    switch MetricsListenAddress.parse(text) {
                    case .success(let address): metrics.listen = address
                    case .failure(let problem): report(value, path, problem.description)
                    }
                }
            }
        }
    }
}
