import CoreMetrics
import Logging
import Prometheus
import RecontextConfiguration
import RecontextCore
import ServiceLifecycle
import Synchronization

// MARK: - MetricsExporter

/// Exports ``MetricsRecorder``'s metrics in the Prometheus text format: to a node_exporter
/// textfile (`metrics.textfile`), and to `GET /metrics` on a unix socket or loopback address
/// (`metrics.listen`).
///
/// The textfile is written at start, every `metrics.interval`, after runs (debounced: one write
/// for a burst), and a last time at shutdown. Gauges that are sampled rather than recorded
/// (queue depth, active runs) are refreshed before each write.
///
/// swift-prometheus 2 depends on swift-metrics and swift-atomics only (no SwiftNIO), so its
/// registry renders the text; the HTTP side is ``MetricsHTTPResponder``, not an HTTP server.
public final class MetricsExporter: Service, Sendable {
    /// The registry the metrics live in.
    public let registry: PrometheusCollectorRegistry
    /// The metrics.
    public let recorder: MetricsRecorder
    /// The settings.
    public let configuration: DaemonConfiguration.Metrics
    private let debounce: Duration
    private let logger: Logger
    private let refresh: Mutex<(@Sendable () async -> Void)?> = Mutex(nil)
    private let lastWriteFailed = Mutex(false)

    /// The factory with this daemon's histogram buckets: phase and run durations from 1 ms to
    /// 30 s, event-to-inserted latency from 10 ms to 2 min, event to guest applied from 25 ms to 30 s.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let phases: [Duration] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30),
        ]
        factory.durationHistogramBuckets[MetricsRecorder.Name.phaseDuration] = phases
        factory.durationHistogramBuckets[MetricsRecorder.Name.runDuration] = phases
        factory.durationHistogramBuckets[MetricsRecorder.Name.eventToInserted] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
            .seconds(120),
        ]
        // The guest applies in tens of milliseconds (the channel) to seconds (a media poll).
        factory.durationHistogramBuckets[GuestMetrics.Name.eventToGuestApplied] = [
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(150), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        return factory
    }

    /// Creates an exporter with its own registry and recorder.
    /// - Parameters:
    ///   - configuration: `metrics.*`.
    ///   - logger: for write and listener problems.
    ///   - debounce: how long to wait after a run before writing, to catch the rest of a burst.
    public convenience init(
        configuration: DaemonConfiguration.Metrics, logger: Logger, debounce: Duration = .milliseconds(500)
    ) {
        let registry = PrometheusCollectorRegistry()
        self.init(
            configuration: configuration, registry: registry,
            recorder: MetricsRecorder(factory: Self.makeFactory(registry: registry)), logger: logger, debounce: debounce
        )
    }

    /// Creates an exporter over an existing registry and recorder.
    public init(
        configuration: DaemonConfiguration.Metrics, registry: PrometheusCollectorRegistry, recorder: MetricsRecorder,
        logger: Logger, debounce: Duration = .milliseconds(500)
    ) {
        self.configuration = configuration
        self.registry = registry
        self.recorder = recorder
        self.logger = logger
        self.debounce = debounce
    }

    /// Whether anything is exported (a textfile or a listener is configured).
    public var isEnabled: Bool { configuration.textfile != nil || configuration.listen != nil }

    /// Sets what is awaited before each export to sample gauges (e.g. the scheduler's queue depth).
    public func setRefresh(_ body: @escaping @Sendable () async -> Void) {
        refresh.withLock { $0 = body }
    }

    /// The exposition text now.
    public func render() -> String {
        registry.emitToString()
    }

    // MARK: - Service

    public func run() async throws {
        var responder: MetricsHTTPResponder?
        if let listen = configuration.listen {
            do {
                let registry = self.registry
                responder = try MetricsHTTPResponder(address: listen) { registry.emitToString() }
                responder?.start()
                logger.notice("serving metrics", metadata: ["metrics.listen": "\(listen)"])
            } catch {
                logger.error(
                    "cannot serve metrics; going on without",
                    metadata: ["metrics.listen": "\(listen)", "error": "\(error)"])
            }
        }
        defer { responder?.stop() }
        await export()
        let interval = configuration.interval
        let recorder = self.recorder
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while true {
                        do { try await Task.sleep(for: interval) } catch { return }
                        recorder.noteChange()
                    }
                }
                for await _ in recorder.changes {
                    do { try await Task.sleep(for: self.debounce) } catch { break }
                    await self.export()
                }
                group.cancelAll()
            }
        }
        await export()
    }

    /// Samples the gauges and writes the textfile (when configured).
    public func export() async {
        if let refresh = refresh.withLock({ $0 }) { await refresh() }
        guard let path = configuration.textfile else { return }
        do {
            try MetricsTextFile(path: path).write(render())
            if lastWriteFailed.withLock({ failed in
                defer { failed = false }
                return failed
            }) {
                logger.notice("metrics textfile written again", metadata: ["metrics.textfile": "\(path)"])
            }
        } catch {
            // Once per failure streak, not every interval.
            if !lastWriteFailed.withLock({ failed in
                defer { failed = true }
                return failed
            }) {
                logger.warning(
                    "cannot write the metrics textfile", metadata: ["metrics.textfile": "\(path)", "error": "\(error)"])
            }
        }
    }
}
