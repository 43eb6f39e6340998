import AtomicFile
import FoundationEssentials
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

/// The last run of each domain, one small JSON file per domain in `<state>/status/`, written with
/// ``AtomicFile`` (a temporary name of its own per write, fsync, rename, fsync of the directory);
/// read by `recontextd status`. One file per domain means the daemon and `recontextd apply` never
/// overwrite each other's records of other domains; two writers of one domain's record (the daemon
/// and `apply`) never see a torn file or fail for each other: the last rename wins.
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
    ///
    /// The status file is advisory (what `status` shows): a failure to write it is ignored here, as
    /// it always was; ``write(_:)`` reports it.
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
        try? write(record)
    }

    /// Writes one record atomically, mode 0640, to `<uuid>.json`.
    /// - Parameter record: The record.
    /// - Throws: ``AtomicFileError`` naming the step and the path.
    public func write(_ record: Record) throws(AtomicFileError) {
        try write(record, beforeRename: nil)
    }

    /// ``write(_:)`` with ``AtomicFile``'s test hook: `beforeRename` sees the complete temporary file.
    package func write(_ record: Record, beforeRename: ((String) -> Void)?) throws(AtomicFileError) {
        // Strings, integers, dates and (with the encoder's float strategy) any Double: cannot fail.
        let data = try! Self.encoder.encode(record)
        _ = try AtomicFile.write(
            Array(data), to: path(of: record.uuid), mode: 0o640, group: nil, durable: true, label: "status file",
            failingAt: nil, beforeRename: beforeRename)
    }

    /// The status file of a domain: `<directory>/<uuid>.json`, the UUID kept to hex digits and `-`.
    /// - Parameter uuid: The domain's UUID.
    /// - Returns: The path.
    public func path(of uuid: String) -> String {
        directory + "/" + uuid.filter { $0.isHexDigit || $0 == "-" } + ".json"
    }

    /// Every recorded domain, by UUID.
    public func all() -> [String: Record] {
        Dictionary(Self.readAll(Record.self, in: directory).map { ($0.uuid, $0) }, uniquingKeysWith: { $1 })
    }

    /// Every `*.json` file of `directory` that decodes as `R` (others are skipped: the files are
    /// advisory, and a half-written one never exists, see ``AtomicFile``).
    static func readAll<R: Decodable>(_ type: R.Type, in directory: String) -> [R] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.compactMap { name in
            FileManager.default.contents(atPath: directory + "/" + name).flatMap {
                try? decoder.decode(R.self, from: $0)
            }
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        // A timing is always finite; should one not be, it is written as a string rather than lost.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
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
