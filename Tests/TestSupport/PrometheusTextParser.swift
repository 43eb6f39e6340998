import Foundation

// MARK: - PrometheusTextParser

/// Parses the Prometheus text exposition with a parser we did not write: Python's
/// `prometheus_client` (Debian's python3-prometheus-client, run by /usr/bin/python3).
public enum PrometheusTextParser {
    /// One sample: `name{labels} value`.
    public struct Sample: Sendable, Hashable {
        /// The sample's name (`…_total`, `…_bucket`, `…_sum`, `…_count` included).
        public var name: String
        /// Its labels.
        public var labels: [String: String]
        /// Its value.
        public var value: Double
        /// The family's type (`counter`, `gauge`, `histogram`, ...).
        public var type: String
    }

    /// The interpreter with Debian's prometheus_client.
    public static let python = "/usr/bin/python3"

    /// Why parsing cannot run here, or `nil`.
    public static var skipReason: String? {
        guard FileManager.default.isExecutableFile(atPath: python) else { return "\(python) is missing" }
        let check = try? ProcessRunner.runAllowingFailure(python, ["-c", "import prometheus_client"])
        guard check?.status == 0 else {
            return "python3-prometheus-client is not installed (scripts/setup installs it)"
        }
        return nil
    }

    /// Whether parsing can run here.
    public static var isAvailable: Bool { skipReason == nil }

    private static let script = #"""
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = []
        with open(sys.argv[1], encoding="utf-8") as f:
            text = f.read()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
        print(json.dumps(out))
        """#

    /// Parses `text` off the cooperative thread pool; throws when prometheus_client rejects it.
    public static func parse(_ text: String) async throws -> [Sample] {
        try await offload { try parseBlocking(text) }
    }

    /// Parses `text` (blocks while python3 runs); throws when prometheus_client rejects it.
    public static func parseBlocking(_ text: String) throws -> [Sample] {
        let path = NSTemporaryDirectory() + "recontextd-metrics-" + UUID().uuidString.prefix(8).lowercased() + ".prom"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try ProcessRunner.run(python, ["-c", script, path])
        let objects = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] ?? []
        return objects.map { object in
            Sample(
                name: object["name"] as? String ?? "", labels: object["labels"] as? [String: String] ?? [:],
                value: (object["value"] as? NSNumber)?.doubleValue ?? .nan, type: object["type"] as? String ?? "")
        }
    }
}

extension Array where Element == PrometheusTextParser.Sample {
    /// The value of the sample `name` with exactly these `labels`, if present.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { $0.name == name && $0.labels == labels }?.value
    }
}
