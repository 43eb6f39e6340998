import CoreMetrics
import RecontextCore

/// The host-guest channel's metrics (part of ``MetricsRecorder``).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `recontextd_event_to_guest_applied_seconds` | histogram | |
/// | `recontextd_guest_acks_total` | counter | `verdict`: accepted, stale, rejected; `result`: ok, hooks-failed, failed |
/// | `recontextd_guest_lines_dropped_total` | counter | `reason`: ``GuestLineError/Reason`` |
/// | `recontextd_guest_channels_open` | gauge | |
/// | `recontextd_guests_lagging` | gauge | |
public final class GuestMetrics: Sendable {
    /// Metric names.
    public enum Name {
        /// From the event that started a run (or the insert, without one) to the guest's accepted ack.
        public static let eventToGuestApplied = "recontextd_event_to_guest_applied_seconds"
        /// Guests' `applied` lines, by the host's verdict and the guest's result.
        public static let acks = "recontextd_guest_acks_total"
        /// Guest lines dropped, by reason.
        public static let dropped = "recontextd_guest_lines_dropped_total"
        /// Guest ports open now.
        public static let channelsOpen = "recontextd_guest_channels_open"
        /// Domains with an open port whose guest has not acknowledged the generation inserted last.
        public static let lagging = "recontextd_guests_lagging"
    }

    static let verdicts = ["accepted", "stale", "rejected"]
    static let results = ["ok", "hooks-failed", "failed"]

    private let eventToGuestApplied: CoreMetrics.Timer
    private let acks: [String: Counter]
    private let dropped: [GuestLineError.Reason: Counter]
    private let channelsOpen: Gauge
    private let lagging: Gauge

    init(factory: any MetricsFactory) {
        eventToGuestApplied = CoreMetrics.Timer(label: Name.eventToGuestApplied, factory: factory)
        var acks: [String: Counter] = [:]
        for verdict in Self.verdicts {
            for result in Self.results {
                acks["\(verdict) \(result)"] = Counter(
                    label: Name.acks, dimensions: [("verdict", verdict), ("result", result)], factory: factory)
            }
        }
        self.acks = acks
        dropped = Dictionary(
            uniqueKeysWithValues: GuestLineError.Reason.allCases.map {
                ($0, Counter(label: Name.dropped, dimensions: [("reason", $0.rawValue)], factory: factory))
            })
        channelsOpen = Gauge(label: Name.channelsOpen, factory: factory)
        lagging = Gauge(label: Name.lagging, factory: factory)
        channelsOpen.record(0)
        lagging.record(0)
    }

    /// Counts an `applied` line; an accepted one with its latency.
    func recordAck(verdict: GuestVerdict, result: GuestAck.Result, latency: Duration?) {
        acks["\(verdict.label) \(result.rawValue)"]?.increment()
        if let latency { eventToGuestApplied.recordNanoseconds(MetricsRecorder.nanoseconds(latency)) }
    }

    /// Counts a dropped line (called on the transport's thread).
    func recordDrop(_ reason: GuestLineError.Reason) {
        dropped[reason]?.increment()
    }

    /// Sets the gauges.
    func recordChannels(open: Int, lagging count: Int) {
        channelsOpen.record(open)
        lagging.record(count)
    }
}
