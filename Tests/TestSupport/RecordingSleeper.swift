import RecontextCore
import Synchronization

/// A ``Sleeper`` that records the durations asked for and returns at once: a test clock for
/// backoff.
///
/// - Important: For unit tests only. Thread-safe.
public final class RecordingSleeper: Sleeper {
    /// Thrown by ``sleep(for:)`` after ``cancel()``.
    public struct Cancelled: Error, Sendable {}

    private struct State: Sendable {
        var durations: [Duration] = []
        var cancelled = false
    }
    private let state = Mutex(State())

    /// Creates a sleeper that never waits.
    public init() {}

    /// Every duration asked for, in order (including the one that threw after ``cancel()``).
    public var durations: [Duration] { state.withLock { $0.durations } }

    /// The sum of the durations asked for.
    public var total: Duration { durations.reduce(.zero, +) }

    /// Makes every later sleep throw, as a cancelled task's sleep does.
    public func cancel() {
        state.withLock { $0.cancelled = true }
    }

    /// Forgets the recorded durations.
    public func reset() {
        state.withLock { $0.durations.removeAll() }
    }

    public func sleep(for duration: Duration) async throws {
        let cancelled = state.withLock { state in
            state.durations.append(duration)
            return state.cancelled
        }
        if cancelled { throw Cancelled() }
    }
}
