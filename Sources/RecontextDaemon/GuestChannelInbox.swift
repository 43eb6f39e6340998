import RecontextCore

/// The channel service's intake: the pipeline's insertions (``InsertObserver``), the coordinator's
/// finished runs, and what the ports read. Never blocks its callers: the stream is unbounded, and
/// what the guests can put in it is bounded by their rate guards.
public final class GuestChannelInbox: InsertObserver, Sendable {
    let stream: AsyncStream<GuestInbound>
    private let continuation: AsyncStream<GuestInbound>.Continuation

    /// Creates an empty inbox.
    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: GuestInbound.self)
    }

    public func inserted(_ insertion: Insertion) {
        continuation.yield(.inserted(insertion))
    }

    /// A run ended (the coordinator's owner tells it).
    func finished(_ report: RunReport, addChannel: Bool) {
        let applied: AppliedState?
        switch report.outcome {
        case .applied(let state), .unchanged(let state): applied = state
        case .skipped: applied = nil
        case .failed: return
        }
        continuation.yield(.finished(uuid: report.uuid, applied: applied, addChannel: addChannel))
    }

    func yield(_ item: GuestInbound) {
        continuation.yield(item)
    }

    /// Ends the stream (shutdown).
    func finish() {
        continuation.finish()
    }
}
