import AtomicFile
import FoundationEssentials
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

/// What the host knows of each domain's guest channel, one small JSON file per domain in
/// `<state>/guest/`, written with ``AtomicFile``; read by `recontextd status`.
public struct GuestStatusStore: Sendable {
    /// The directory of the files.
    public let directory: String

    /// One domain's channel and its guest, as `status` shows them.
    public struct Record: Codable, Sendable, Hashable {
        public var uuid: String
        /// `open`, `absent`, `muted`, `closed` or `error`.
        public var channel: String
        /// Why the channel is not open, when it is not.
        public var channelDetail: String?
        public var companionVersion: String?
        /// The generation sent to the guest last, and when.
        public var sentGeneration: UInt64?
        public var lastAck: Ack?
        /// Lines dropped, by reason; and the last reason.
        public var dropped: [String: Int]
        public var lastDrop: String?
        public var time: Date

        /// An `applied` line as the host judged it.
        public struct Ack: Codable, Sendable, Hashable {
            public var generation: UInt64
            public var result: String
            public var verdict: String
            public var hooks: [String]
            public var failedHooks: [String]
            public var guestMilliseconds: UInt32?
            /// From the event that started the run (or the insert) to the ack.
            public var latencyMilliseconds: Double?
            public var time: Date

            enum CodingKeys: String, CodingKey {
                case generation, result, verdict, hooks, time
                case failedHooks = "failed_hooks"
                case guestMilliseconds = "guest_ms"
                case latencyMilliseconds = "latency_ms"
            }
        }

        enum CodingKeys: String, CodingKey {
            case uuid, channel, dropped, time
            case channelDetail = "channel_detail"
            case companionVersion = "companion_version"
            case sentGeneration = "sent_generation"
            case lastAck = "last_ack"
            case lastDrop = "last_drop"
        }
    }

    /// Creates the store (and its directory, mode 0750).
    public init(stateDirectory: String) {
        directory = stateDirectory + "/guest"
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    }

    /// Writes one record atomically (mode 0640).
    /// - Throws: ``AtomicFileError`` naming the step and the path.
    public func write(_ record: Record) throws(AtomicFileError) {
        let data = try! StatusStore.encoder.encode(record)
        _ = try AtomicFile.write(
            Array(data), to: path(of: record.uuid), mode: 0o640, durable: false, label: "guest status file")
    }

    /// Removes a domain's record (it left this host).
    public func remove(_ uuid: String) {
        unlink(path(of: uuid))
    }

    /// The file of a domain, the UUID kept to hex digits and `-`.
    public func path(of uuid: String) -> String {
        directory + "/" + uuid.filter { $0.isHexDigit || $0 == "-" } + ".json"
    }

    /// Every recorded domain, by UUID.
    public func all() -> [String: Record] {
        Dictionary(
            StatusStore.readAll(Record.self, in: directory).map { ($0.uuid, $0) }, uniquingKeysWith: { $1 })
    }
}
