/// The one owner of per-domain work: serialises runs per domain, coalesces bursts and bounds
/// concurrency across domains.
///
/// - A domain has at most one run at a time.
/// - Work submitted while a domain's run is in progress becomes one follow-up run after it
///   ("run once more"), however many submissions arrive; the follow-up keeps the latest trigger.
/// - Work submitted while a domain waits in the queue joins that queued run.
/// - At most `concurrency` domains run at once; the rest wait in FIFO order.
/// - ``submit(_:trigger:)`` never waits for work: event intake is never blocked by slow runs.
public actor DomainScheduler {
    /// Runs the pipeline for one domain.
    public typealias Runner = @Sendable (_ uuid: String, _ trigger: Trigger) async -> RunReport

    private let runner: Runner
    private let onReport: @Sendable (RunReport) -> Void
    /// How many domains may run at once.
    public nonisolated let concurrency: Int

    private struct Running {
        var followUp: Trigger?
    }
    private var running: [String: Running] = [:]
    private var queue: [String] = []
    private var queueHead = 0
    private var queued: [String: Trigger] = [:]
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var accepting = true
    private(set) var submissions = 0
    private(set) var coalesced = 0

    /// Creates a scheduler.
    /// - Parameters:
    ///   - concurrency: the most domains that run at once (at least 1).
    ///   - runner: runs one domain's pipeline.
    ///   - onReport: called with every finished run's report, in the scheduler's isolation; it
    ///     must not block.
    public init(
        concurrency: Int, runner: @escaping Runner, onReport: @escaping @Sendable (RunReport) -> Void = { _ in }
    ) {
        precondition(concurrency >= 1, "concurrency must be at least 1")
        self.concurrency = concurrency
        self.runner = runner
        self.onReport = onReport
    }

    /// Asks for a run of `uuid`. Returns at once.
    public func submit(_ uuid: String, trigger: Trigger) {
        guard accepting else { return }
        submissions += 1
        if running[uuid] != nil {
            if running[uuid]?.followUp != nil { coalesced += 1 }
            running[uuid]?.followUp = trigger
            return
        }
        if queued[uuid] != nil {
            coalesced += 1
            return
        }
        enqueue(uuid, trigger)
        pump()
    }

    /// Domains waiting for a slot.
    public var queueDepth: Int { queue.count - queueHead }
    /// Domains running now.
    public var activeRuns: Int { running.count }
    /// True when nothing runs or waits.
    public var isIdle: Bool { running.isEmpty && queueDepth == 0 }

    /// Waits until nothing runs or waits (follow-ups included).
    public func waitUntilIdle() async {
        if isIdle { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    /// Stops accepting work, drops what waits in the queue, and waits for running work to end.
    ///
    /// Running pipelines are not cancelled: a run in progress finishes its swap, so no domain
    /// is left between an eject and an insert.
    public func drain() async {
        accepting = false
        queue.removeAll()
        queueHead = 0
        queued.removeAll()
        for uuid in running.keys { running[uuid]?.followUp = nil }
        await waitUntilIdle()
    }

    // MARK: - Internals

    private func enqueue(_ uuid: String, _ trigger: Trigger) {
        queued[uuid] = trigger
        queue.append(uuid)
    }

    private func pump() {
        while running.count < concurrency, queueHead < queue.count {
            let uuid = queue[queueHead]
            queueHead += 1
            guard let trigger = queued.removeValue(forKey: uuid) else { continue }
            running[uuid] = Running()
            let runner = self.runner
            Task {
                let report = await runner(uuid, trigger)
                self.finished(uuid, report)
            }
        }
        if queueHead > 1024, queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        if isIdle {
            let waiters = idleWaiters
            idleWaiters = []
            for waiter in waiters { waiter.resume() }
        }
    }

    private func finished(_ uuid: String, _ report: RunReport) {
        onReport(report)
        let followUp = running.removeValue(forKey: uuid)?.followUp
        if let followUp, accepting { enqueue(uuid, followUp) }
        pump()
    }
}
