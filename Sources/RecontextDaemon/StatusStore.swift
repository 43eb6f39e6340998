import Foundation
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

/// The last run of each domain, one small JSON file per domain in `<state>/status/`, written
/// atomically; read by `recontextd status`. One file per domain means the daemon and
/// `recontextd apply` never overwrite each other's records.
public struct StatusStore: Sendable {
    /// The directory of the status files.
    public let directory: String

    /// What is recorded of a run.
    public struct Record: Codable, Sendable, Hashable {
        public var uuid: String
        public var name: String?
        public var result: String
        public var trigger: String
        public var runID: String
        public var time: Date
        public var generation: UInt64?
        public var contentHash: String?
        public var image: String?
        public var phase: String?
        public var error: String?
        public var transient: Bool?
        public var skipReason: String?
        public var warnings: [String]
        public var timingsMilliseconds: [String: Double]

        enum CodingKeys: String, CodingKey {
            case uuid, name, result, trigger, time, generation, image, phase, error, transient, warnings
            case runID = "run_id"
            case contentHash = "content_hash"
            case skipReason = "skip_reason"
            case timingsMilliseconds = "timings_ms"
        }
    }

    /// Creates the store (and its directory, mode 0750).
    public init(stateDirectory: String) {
        directory = stateDirectory + "/status"
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    }

    /// Records a finished run.
    public func record(_ report: RunReport) {
        var record = Record(
            uuid: report.uuid, name: report.domain?.name, result: report.result, trigger: report.trigger.rawValue,
            runID: report.runID, time: Date(), warnings: report.warnings, timingsMilliseconds: [:])
        for (phase, duration) in report.timings.phases {
            record.timingsMilliseconds[phase.rawValue] = duration.milliseconds
        }
        record.timingsMilliseconds["total"] = report.timings.total.milliseconds
        switch report.outcome {
        case .applied(let applied), .unchanged(let applied):
            record.generation = applied.generation
            record.contentHash = applied.contentHash
            record.image = applied.imagePath
        case .skipped(let reason):
            record.skipReason = reason.rawValue
        case .failed(let phase, let message, let transient):
            record.phase = phase.rawValue
            record.error = message
            record.transient = transient
        }
        guard let data = try? Self.encoder.encode(record) else { return }
        let name = report.uuid.filter { $0.isHexDigit || $0 == "-" }
        let path = directory + "/" + name + ".json"
        let temporary = directory + "/." + name + ".json.tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o640])
        else { return }
        rename(temporary, path)
    }

    /// Every recorded domain, by UUID.
    public func all() -> [String: Record] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [:] }
        var records: [String: Record] = [:]
        for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                let record = try? Self.decoder.decode(Record.self, from: data)
            else { continue }
            records[record.uuid] = record
        }
        return records
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

extension Duration {
    /// The duration in milliseconds, as a floating-point number.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
