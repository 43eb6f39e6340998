/// Runs a domain again later when its run failed for a reason that may pass (libvirt busy or
/// away, the disk full, a device error that outlasted the run's own retries).
///
/// Each failing domain waits `initial`, then twice as long after each further failure, up to
/// `maximum`, with no limit on attempts while failures stay transient. A success, a permanent
/// failure or a skip clears the domain's state. At most one retry waits per domain; the periodic
/// reconcile remains the safety net behind it.
public actor RetryLater {
    private let initial: Duration
    private let maximum: Duration
    private let sleeper: any Sleeper
    private let submit: @Sendable (String) async -> Void
    private var failures: [String: Int] = [:]
    private var waiting: [String: Task<Void, Never>] = [:]

    /// Creates the retry state.
    /// - Parameters:
    ///   - initial: the wait after the first failed run.
    ///   - maximum: the longest wait.
    ///   - sleeper: waits (a test clock in tests).
    ///   - submit: asks for a run of a domain (with ``Trigger/retry``).
    public init(
        initial: Duration = .seconds(5), maximum: Duration = .seconds(300), sleeper: any Sleeper = ClockSleeper(),
        submit: @escaping @Sendable (String) async -> Void
    ) {
        self.initial = initial
        self.maximum = maximum
        self.sleeper = sleeper
        self.submit = submit
    }

    /// Looks at a finished run: schedules a retry, or forgets the domain.
    /// - Returns: the wait before the retry, or `nil` when none is scheduled.
    @discardableResult
    public func handle(_ report: RunReport) -> Duration? {
        guard report.isRetryable else {
            failures.removeValue(forKey: report.uuid)
            waiting.removeValue(forKey: report.uuid)?.cancel()
            return nil
        }
        let count = (failures[report.uuid] ?? 0) + 1
        failures[report.uuid] = count
        guard waiting[report.uuid] == nil else { return nil }
        let delay = Self.delay(afterFailures: count, initial: initial, maximum: maximum)
        let uuid = report.uuid
        let sleeper = self.sleeper
        let submit = self.submit
        waiting[uuid] = Task {
            do { try await sleeper.sleep(for: delay) } catch { return }
            self.fire(uuid)
            await submit(uuid)
        }
        return delay
    }

    /// Domains with a retry waiting.
    public var pendingDomains: Set<String> { Set(waiting.keys) }

    /// Cancels every waiting retry (shutdown).
    public func cancelAll() {
        for task in waiting.values { task.cancel() }
        waiting.removeAll()
    }

    private func fire(_ uuid: String) {
        waiting.removeValue(forKey: uuid)
    }

    /// initial × 2^(failures-1), capped at `maximum`.
    static func delay(afterFailures count: Int, initial: Duration, maximum: Duration) -> Duration {
        var delay = initial
        for _ in 1..<max(count, 1) {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}
