import Logging
import RecontextCore
import YAML

// MARK: - Sections: pipeline, limits, log, metrics

extension ConfigReader {
    mutating func readPipeline(_ node: YAMLNode, into pipeline: inout DaemonConfiguration.Pipeline) {
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
                var initialNode: YAMLNode?
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

    mutating func readLimits(_ node: YAMLNode, into limits: inout MetadataLimits) {
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

    mutating func readLog(_ node: YAMLNode, into config: inout DaemonConfiguration) {
        for (key, value) in entries(node, path: "log", known: ["level", "target"]) {
            if key == "level" {
                if let parsed = choice(value, "log.level", Logger.Level.self) { config.logLevel = parsed }
            } else if let parsed = choice(value, "log.target", DaemonConfiguration.LogTarget.self) {
                config.logTarget = parsed
            }
        }
    }

    /// Whether `node` is written as nothing (or `null`, `~`), not as a quoted string.
    static func isPlainNull(_ node: YAMLNode) -> Bool {
        node.isNull && node.scalar?.style == .plain
    }

    mutating func readMetrics(_ node: YAMLNode, into metrics: inout DaemonConfiguration.Metrics) {
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
