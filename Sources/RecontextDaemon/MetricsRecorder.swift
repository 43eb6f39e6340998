import CoreMetrics
import RecontextCore
import Synchronization
import Virt

// MARK: - MetricsRecorder

/// The daemon's metrics, recorded through swift-metrics (any backend; the daemon uses
/// swift-prometheus, see ``MetricsExporter``).
///
/// Every dimension has a bounded set of values: event types, run results and phases are fixed
/// lists; no domain name or UUID is ever a label (those are in the journal).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `recontextd_events_total` | counter | `type`: ``eventType(_:)`` |
/// | `recontextd_pipeline_runs_total` | counter | `result`: applied, unchanged, skipped, failed |
/// | `recontextd_pipeline_phase_duration_seconds` | histogram | `phase`: resolve, eject, build, insert, persist, record |
/// | `recontextd_pipeline_run_duration_seconds` | histogram | |
/// | `recontextd_event_to_inserted_seconds` | histogram | |
/// | `recontextd_event_to_applied_seconds` | histogram | |
/// | `recontextd_libvirt_reconnects_total` | counter | |
/// | `recontextd_reloads_total` | counter | |
/// | `recontextd_queue_depth` | gauge | |
/// | `recontextd_active_runs` | gauge | |
/// | `recontextd_managed_domains` | gauge | |
///
/// and the host-guest channel's (``GuestMetrics``).
public final class MetricsRecorder: Sendable {
    /// Metric names.
    public enum Name {
        /// libvirt events received, by `type`.
        public static let events = "recontextd_events_total"
        /// Finished pipeline runs, by `result`.
        public static let runs = "recontextd_pipeline_runs_total"
        /// Time per phase, by `phase`.
        public static let phaseDuration = "recontextd_pipeline_phase_duration_seconds"
        /// Time per run.
        public static let runDuration = "recontextd_pipeline_run_duration_seconds"
        /// From receiving the event that started a run to the new image in the live domain.
        public static let eventToInserted = "recontextd_event_to_inserted_seconds"
        /// From receiving the event that started a run to its end (persistent definition updated
        /// and applied state recorded too).
        public static let eventToApplied = "recontextd_event_to_applied_seconds"
        /// Connections to libvirt after the first.
        public static let reconnects = "recontextd_libvirt_reconnects_total"
        /// Configuration reloads that took effect.
        public static let reloads = "recontextd_reloads_total"
        /// Domains waiting for a run slot.
        public static let queueDepth = "recontextd_queue_depth"
        /// Runs in progress.
        public static let activeRuns = "recontextd_active_runs"
        /// Domains whose last run was not skipped (opted in and present).
        public static let managedDomains = "recontextd_managed_domains"
    }

    /// Run results, the values of `result`.
    public static let results = ["applied", "unchanged", "skipped", "failed"]

    private let factory: any MetricsFactory
    private let runs: [String: Counter]
    private let phases: [Phase: CoreMetrics.Timer]
    private let runDuration: CoreMetrics.Timer
    private let eventToInserted: CoreMetrics.Timer
    private let eventToApplied: CoreMetrics.Timer
    private let reconnects: Counter
    private let reloads: Counter
    private let queueDepth: Gauge
    private let activeRuns: Gauge
    private let managedDomains: Gauge
    private let eventCounters = Mutex<[String: Counter]>([:])
    private let changesContinuation: AsyncStream<Void>.Continuation
    /// The host-guest channel's metrics.
    public let guest: GuestMetrics

    /// Yields (coalesced) after every finished run: the exporter writes the textfile then.
    public let changes: AsyncStream<Void>

    /// Creates the metrics with `factory` (by default the one `MetricsSystem` was bootstrapped with).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        runs = Dictionary(
            uniqueKeysWithValues: Self.results.map {
                ($0, Counter(label: Name.runs, dimensions: [("result", $0)], factory: factory))
            })
        phases = Dictionary(
            uniqueKeysWithValues: Phase.allCases.map {
                (
                    $0,
                    CoreMetrics.Timer(label: Name.phaseDuration, dimensions: [("phase", $0.rawValue)], factory: factory)
                )
            })
        runDuration = CoreMetrics.Timer(label: Name.runDuration, factory: factory)
        eventToInserted = CoreMetrics.Timer(label: Name.eventToInserted, factory: factory)
        eventToApplied = CoreMetrics.Timer(label: Name.eventToApplied, factory: factory)
        reconnects = Counter(label: Name.reconnects, factory: factory)
        reloads = Counter(label: Name.reloads, factory: factory)
        queueDepth = Gauge(label: Name.queueDepth, factory: factory)
        activeRuns = Gauge(label: Name.activeRuns, factory: factory)
        managedDomains = Gauge(label: Name.managedDomains, factory: factory)
        queueDepth.record(0)
        activeRuns.record(0)
        managedDomains.record(0)
        guest = GuestMetrics(factory: factory)
        (changes, changesContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    deinit {
        changesContinuation.finish()
    }

    // MARK: - Events

    /// Counts one event by its type (``eventType(_:)`` for libvirt's events).
    public func recordEvent(type: String) {
        let counter = eventCounters.withLock { counters in
            if let counter = counters[type] { return counter }
            let counter = Counter(label: Name.events, dimensions: [("type", type)], factory: factory)
            counters[type] = counter
            return counter
        }
        counter.increment()
    }

    /// A bounded name for an event: the lifecycle event and detail as the trigger logic sees them
    /// (`started_booted`, `resumed_migrated`, ...), `metadata_context`, `metadata_other`,
    /// `tray_change`, `device_added`, `device_removed`, `disk_change`, `connection_closed`.
    public static func eventType(_ event: ConnectionEvent) -> String {
        switch event {
        case .closed: return "connection_closed"
        case .domain(let domainEvent):
            switch domainEvent.kind {
            case .lifecycle(let lifecycle):
                let signal = LifecycleSignal(lifecycle)
                return signal == .other ? "lifecycle_other" : snakeCase("\(signal)").lowercased()
            case .metadataChange(.element, let namespace) where namespace == ContextMetadata.namespaceURI:
                return "metadata_context"
            case .metadataChange: return "metadata_other"
            case .trayChange: return "tray_change"
            case .deviceAdded: return "device_added"
            case .deviceRemoved: return "device_removed"
            case .diskChange: return "disk_change"
            }
        }
    }

    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase, !result.isEmpty { result.append("_") }
            result.append(character)
        }
        return result
    }

    // MARK: - Runs

    /// Records a finished run: its result, its phase timings and, when it inserted a new image
    /// and an event started it, the time from that event to the insert and to the run's end.
    /// - Parameters:
    ///   - report: the run's report.
    ///   - eventTime: when the event that started the run was received, if one did.
    ///   - now: the end of the run.
    public func recordRun(
        _ report: RunReport, eventTime: ContinuousClock.Instant? = nil, now: ContinuousClock.Instant = .now
    ) {
        runs[report.result]?.increment()
        for (phase, duration) in report.timings.phases { phases[phase]?.recordNanoseconds(Self.nanoseconds(duration)) }
        runDuration.recordNanoseconds(Self.nanoseconds(report.timings.total))
        if case .applied = report.outcome, let eventTime {
            eventToInserted.recordNanoseconds(Self.nanoseconds((report.timings.insertedAt ?? now) - eventTime))
            eventToApplied.recordNanoseconds(Self.nanoseconds(now - eventTime))
        }
        changesContinuation.yield()
    }

    /// Sets the number of managed domains (the coordinator counts them).
    public func recordManagedDomains(_ count: Int) {
        managedDomains.record(count)
    }

    /// Counts a reconnect to libvirt (a connection after the first).
    public func recordReconnect() {
        reconnects.increment()
    }

    /// Counts a configuration reload.
    public func recordReload() {
        reloads.increment()
    }

    /// Sets the coordinator's gauges (sampled before each export).
    public func recordCoordinator(queueDepth depth: Int, activeRuns active: Int) {
        queueDepth.record(depth)
        activeRuns.record(active)
    }

    /// Asks the exporter to write soon (coalesced with other requests).
    public func noteChange() {
        changesContinuation.yield()
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
