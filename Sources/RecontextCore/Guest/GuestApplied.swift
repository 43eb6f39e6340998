import FoundationEssentials

/// What a domain's guest said it applied, accepted by the host: kept in the applied record of the
/// domain's metadata (``AppliedMetadata``, attributes `guest-*`), so it migrates with the domain.
public struct GuestApplied: Sendable, Hashable {
    /// The generation the guest applied.
    public var generation: UInt64
    /// Its result.
    public var result: GuestAck.Result
    /// When the host accepted the acknowledgement (whole seconds).
    public var time: Date

    /// Creates a record; `time` is truncated to whole seconds.
    public init(generation: UInt64, result: GuestAck.Result, time: Date) {
        self.generation = generation
        self.result = result
        self.time = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
    }
}

/// How the host judges a guest's `applied` line against what it inserted.
public enum GuestVerdict: Sendable, Hashable, CustomStringConvertible {
    /// The generation and hash this host inserted last: recorded.
    case accepted
    /// An earlier generation than the one inserted (a late or repeated ack): counted, not recorded.
    case stale
    /// A generation or hash the host never gave this guest, or nothing inserted yet.
    case rejected(String)

    /// Judges `ack` against `inserted`, the domain's applied state on this host.
    public static func judge(_ ack: GuestAck, inserted: AppliedState?) -> GuestVerdict {
        guard let inserted else { return .rejected("nothing was inserted by this host") }
        if ack.generation == inserted.generation {
            return ack.contentHash == inserted.contentHash
                ? .accepted : .rejected("content hash differs from the inserted generation's")
        }
        if ack.generation < inserted.generation { return .stale }
        return .rejected("generation \(ack.generation) was never inserted (last: \(inserted.generation))")
    }

    /// `accepted`, `stale` or `rejected` (a metric label).
    public var label: String {
        switch self {
        case .accepted: "accepted"
        case .stale: "stale"
        case .rejected: "rejected"
        }
    }

    public var description: String {
        if case .rejected(let why) = self { return "rejected: \(why)" }
        return label
    }
}
