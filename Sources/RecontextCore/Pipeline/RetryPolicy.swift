/// Exponential backoff for transient failures.
public struct RetryPolicy: Sendable, Hashable {
    /// How many attempts in all (1 means no retry).
    public var attempts: Int
    /// The wait before the second attempt.
    public var initialBackoff: Duration
    /// The longest wait between attempts.
    public var maxBackoff: Duration

    /// Creates a policy.
    public init(attempts: Int = 5, initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(10)) {
        precondition(attempts >= 1, "at least one attempt")
        self.attempts = attempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait after failed attempt number `attempt` (1-based): initial × 2^(attempt-1), capped.
    public func backoff(afterAttempt attempt: Int) -> Duration {
        var delay = initialBackoff
        for _ in 1..<max(attempt, 1) {
            delay = delay * 2
            if delay >= maxBackoff { return maxBackoff }
        }
        return min(delay, maxBackoff)
    }
}

/// Sleeps; injectable so tests see the backoff without waiting for it.
public protocol Sleeper: Sendable {
    /// Suspends for `duration` (or throws on cancellation).
    func sleep(for duration: Duration) async throws
}

/// Sleeps on the continuous clock.
public struct ClockSleeper: Sleeper {
    /// Creates a sleeper.
    public init() {}
    public func sleep(for duration: Duration) async throws {
        try await ContinuousClock().sleep(for: duration)
    }
}
