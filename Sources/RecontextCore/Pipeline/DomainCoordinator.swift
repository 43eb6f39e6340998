import Logging

/// The one owner of per-domain state: turns events into runs, runs them, retries what failed
/// transiently, and drains within a budget at shutdown.
///
/// What it keeps per domain (``DomainRecord``): an incoming migration not yet finished, a queued
/// run, a running run and its follow-up, consecutive transient failures and the pending retry,
/// the receive time of the event that asked for the next run, whether the domain is managed, and
/// what this host inserted last with the guest's acknowledgement of it (``acknowledge(_:ack:at:)``).
///
/// - A domain has at most one run at a time.
/// - Work submitted while a domain's run is in progress becomes one follow-up run after it ("run
///   once more"), however many submissions arrive; the follow-up keeps the latest trigger.
/// - Work submitted while a domain waits in the queue joins that queued run.
/// - At most `concurrency` domains run at once; the rest wait in FIFO order.
/// - A run that failed transiently runs again after `initial`, doubling per further failure up
///   to `maximum`; a success, a permanent failure or a skip forgets the failures.
/// - The earliest event that asked for a run rides with the work (``Work/eventTime``), so the
///   event-to-inserted latency needs no side table.
///
/// Runs and retry timers are child tasks of ``run()`` (a task group): nothing outlives it.
/// ``shutdown(budget:)`` stops intake, drops queued work, follow-ups and retries, lets running
/// runs finish their swap, and cancels them when the budget is spent, logging the domains left.
///
/// Intake (``handle(_:receivedAt:)``, ``submit(_:trigger:eventTime:)``) never waits for a run.
public actor DomainCoordinator {
    /// One run to do.
    public struct Work: Sendable, Hashable {
        /// The domain.
        public var uuid: String
        /// Why it runs.
        public var trigger: Trigger
        /// When the earliest event that asked for this run was received, if an event did.
        public var eventTime: ContinuousClock.Instant?

        /// Creates work.
        public init(uuid: String, trigger: Trigger, eventTime: ContinuousClock.Instant? = nil) {
            self.uuid = uuid
            self.trigger = trigger
            self.eventTime = eventTime
        }
    }

    /// Runs the pipeline for one piece of work. Runs on a child task of ``run()``; it may do
    /// blocking work through an executor of its own, never in the coordinator's isolation.
    public typealias Runner = @Sendable (Work) async -> RunReport

    /// What the coordinator tells its owner after every run (in its isolation: must not block).
    public struct Finished: Sendable {
        /// The run's report.
        public var report: RunReport
        /// The work it did.
        public var work: Work
        /// The wait before a retry, when one was scheduled.
        public var retryAfter: Duration?
        /// How many domains are managed now (their last run was not skipped).
        public var managedDomains: Int
    }

    /// Concurrency and retry settings.
    public struct Settings: Sendable, Hashable {
        /// The most domains that run at once (at least 1).
        public var concurrency: Int
        /// The wait after the first transiently failed run.
        public var retryInitial: Duration
        /// The longest wait between retries.
        public var retryMaximum: Duration

        /// Creates settings.
        public init(concurrency: Int = 4, retryInitial: Duration = .seconds(5), retryMaximum: Duration = .seconds(300))
        {
            precondition(concurrency >= 1, "concurrency must be at least 1")
            self.concurrency = concurrency
            self.retryInitial = retryInitial
            self.retryMaximum = retryMaximum
        }
    }

    enum Command: Sendable {
        case start(Work)
        case retry(uuid: String, after: Duration, token: UInt64)
        case budget(Duration)
        case stop
    }

    /// Ends ``run()``'s task group: the drain is complete, or its budget is spent.
    enum Ending: Error {
        case drained, budgetSpent, stopped
    }

    /// The settings.
    public nonisolated let settings: Settings
    let runner: Runner
    let onFinished: @Sendable (Finished) -> Void
    let sleeper: any Sleeper
    let logger: Logger
    nonisolated let commands: AsyncStream<Command>
    nonisolated let intake: AsyncStream<Command>.Continuation

    var domains: [String: DomainRecord] = [:]
    var queue = FIFOQueue()
    var runningCount = 0
    var managedCount = 0
    var nextRetryToken: UInt64 = 0
    var idleWaiters: [CheckedContinuation<Void, Never>] = []
    /// False once shutdown began: no new work, no retries, no follow-ups.
    public internal(set) var accepting = true
    /// Submissions so far (for tests and metrics).
    public private(set) var submissions = 0
    /// Submissions that joined a queued run or a follow-up.
    public private(set) var coalesced = 0
    /// The domains a spent shutdown budget left running (empty unless it happened).
    public internal(set) var leftAtShutdown: [String] = []

    /// Creates a coordinator; ``run()`` starts its work.
    /// - Parameters:
    ///   - settings: concurrency and retry waits.
    ///   - sleeper: waits for retries and the shutdown budget (a test clock in tests).
    ///   - logger: retry and shutdown messages.
    ///   - runner: runs one domain's pipeline.
    ///   - onFinished: told about every finished run, in the coordinator's isolation.
    public init(
        settings: Settings, sleeper: any Sleeper = ClockSleeper(), logger: Logger, runner: @escaping Runner,
        onFinished: @escaping @Sendable (Finished) -> Void = { _ in }
    ) {
        self.settings = settings
        self.sleeper = sleeper
        self.logger = logger
        self.runner = runner
        self.onFinished = onFinished
        (commands, intake) = AsyncStream.makeStream(of: Command.self)
    }

    // MARK: - Intake

    /// Handles one hypervisor event: decides with ``TriggerPolicy`` and submits a run if it
    /// asks for one. Returns at once.
    /// - Returns: the trigger of the run it asked for, if any.
    @discardableResult
    public func handle(_ event: HypervisorEvent, receivedAt: ContinuousClock.Instant? = nil) -> Trigger? {
        let uuid = event.domain.uuid
        let decision = TriggerPolicy.decide(event, incoming: domains[uuid]?.incoming ?? false)
        if decision.incoming != (domains[uuid]?.incoming ?? false) {
            update(uuid) { $0.incoming = decision.incoming }
        }
        guard let trigger = decision.trigger else { return nil }
        submit(uuid, trigger: trigger, eventTime: receivedAt)
        return trigger
    }

    /// Asks for a run of `uuid`. Returns at once.
    public func submit(_ uuid: String, trigger: Trigger, eventTime: ContinuousClock.Instant? = nil) {
        guard accepting else { return }
        submissions += 1
        let work = Work(uuid: uuid, trigger: trigger, eventTime: eventTime)
        var record = domains[uuid] ?? DomainRecord()
        if record.running {
            // The follow-up takes the latest trigger and the earliest event.
            if record.followUp != nil { coalesced += 1 }
            record.followUp = Work(
                uuid: uuid, trigger: trigger, eventTime: Work.earliest(record.followUp?.eventTime, eventTime))
            domains[uuid] = record
            return
        }
        if var queued = record.queued {
            // A queued run keeps its trigger; the earliest event counts.
            coalesced += 1
            queued.eventTime = Work.earliest(queued.eventTime, eventTime)
            record.queued = queued
            domains[uuid] = record
            return
        }
        record.queued = work
        domains[uuid] = record
        queue.append(uuid)
        pump()
    }

    /// Submits a run for each of `domains` (start-up, reconnect, reload, periodic reconcile).
    public func submit(all uuids: [String], trigger: Trigger) {
        for uuid in uuids { submit(uuid, trigger: trigger) }
    }

    // MARK: - State

    /// Domains waiting for a run slot.
    public var queueDepth: Int { queue.count }
    /// Domains running now.
    public var activeRuns: Int { runningCount }
    /// True when nothing runs or waits (pending retries aside).
    public var isIdle: Bool { runningCount == 0 && queue.isEmpty }
    /// Domains seen arriving (STARTED/MIGRATED) that have neither resumed, paused nor stopped.
    public var incomingMigrations: Set<String> { Set(domains.filter { $0.value.incoming }.keys) }
    /// Domains with a retry waiting.
    public var pendingRetries: Set<String> { Set(domains.filter { $0.value.retryToken != nil }.keys) }
    /// Domains whose last run was not skipped.
    public var managedDomains: Int { managedCount }
    /// Domains the coordinator keeps a record of (bounded by the domains of this host).
    public var recordCount: Int { domains.count }

    /// Waits until nothing runs or waits (follow-ups included).
    public func waitUntilIdle() async {
        if isIdle { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }
}

// MARK: - Per-domain record

/// What the coordinator knows of one domain.
struct DomainRecord: Sendable {
    /// Seen STARTED/MIGRATED, not yet resumed, paused or stopped.
    var incoming = false
    /// A run of it is in progress.
    var running = false
    /// The run to start when the current one ends.
    var followUp: DomainCoordinator.Work?
    /// The run waiting in the queue.
    var queued: DomainCoordinator.Work?
    /// Consecutive transiently failed runs.
    var failures = 0
    /// The pending retry's token (a fired timer with another token is stale).
    var retryToken: UInt64?
    /// Its last run was not skipped.
    var managed = false
    /// What this host last inserted (or found current), with the guest's accepted acknowledgement.
    var applied: AppliedState?

    /// Nothing worth keeping: the record can go.
    var isEmpty: Bool {
        !incoming && !running && followUp == nil && queued == nil && failures == 0 && retryToken == nil && !managed
            && applied == nil
    }
}

extension DomainCoordinator.Work {
    /// The earlier of two optional event times.
    static func earliest(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }
}

/// A FIFO of domain UUIDs with amortised O(1) removal at the head.
struct FIFOQueue: Sendable {
    private var items: [String] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ uuid: String) { items.append(uuid) }

    mutating func popFirst() -> String? {
        guard head < items.count else { return nil }
        defer {
            head += 1
            if head > 1024, head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
        return items[head]
    }

    mutating func removeAll() {
        items.removeAll()
        head = 0
    }
}
