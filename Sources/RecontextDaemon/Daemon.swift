import Logging
import RecontextConfiguration
import RecontextCore
import ServiceLifecycle
import UnixSignals

/// `recontextd run`: the host service, as a `ServiceGroup` of services that share one
/// ``DaemonContext``.
///
/// | service | its `run()` |
/// |---|---|
/// | ``NotifierWatchdog`` | `WATCHDOG=1` while the coordinator answers (when systemd asks for it) |
/// | ``MetricsExporter`` | the textfile and the listener (when configured); a last write at stop |
/// | ``CoordinatorService`` | the ``DomainCoordinator``: runs, retries, the drain within its budget |
/// | ``GuestChannelService`` | the host-guest channel: ports, "generation N", the guests' acks (when the hypervisor has ports) |
/// | ``EventService`` | connect (with backoff), subscribe, reconcile, events into runs, reconnect |
/// | ``MaintenanceService`` | periodic reconcile and image collection |
/// | ``ReloadService`` | SIGHUP: re-read the configuration; first to stop, it says `STOPPING=1` |
///
/// Services stop in reverse order: reloads and events stop first, then the coordinator drains,
/// then the last metrics are written while the watchdog keeps pinging.
public struct Daemon: Sendable {
    /// What the daemon tells its supervisor (sd_notify) about.
    public enum ReadinessEvent: Sendable, Hashable {
        /// Connected, subscribed, first reconcile done.
        case ready
        /// Reloading the configuration.
        case reloading
        /// Shutting down.
        case stopping
        /// A status line.
        case status(String)
    }

    /// The state the services share.
    public let context: DaemonContext

    /// Builds a daemon over a hypervisor and its event source (libvirt in production, fakes in
    /// tests), from options and an already validated configuration.
    /// - Parameters:
    ///   - readiness: told about readiness, reloads, stopping and status (``Notifier``).
    ///   - metrics: where events and runs are counted.
    ///   - sleeper: waits for retries, backoff and the shutdown budget (a test clock in tests).
    ///   - guestPorts: opens the host-guest channel's ports; `nil` runs without the channel.
    /// - Throws: ``ImageStoreError`` when the image directory is unusable.
    public init(
        options: DaemonOptions, configuration: DaemonConfiguration, hypervisor: any Hypervisor,
        events: any HypervisorEventSource, logger: Logger,
        readiness: @escaping @Sendable (ReadinessEvent) -> Void = { _ in },
        metrics: MetricsRecorder = MetricsRecorder(),
        sleeper: any Sleeper = ClockSleeper(),
        guestPorts: (any GuestPortOpener)? = nil
    ) async throws(ImageStoreError) {
        let inbox = GuestChannelInbox()
        let runtime = try await Runtime.make(
            configuration: configuration, hypervisor: hypervisor, logger: logger, observer: inbox)
        context = DaemonContext(
            options: options, runtime: runtime, hypervisor: hypervisor, events: events, logger: logger,
            readiness: readiness, metrics: metrics, sleeper: sleeper, guestInbox: inbox, guestPorts: guestPorts)
    }

    /// The daemon over libvirt at the configuration's `libvirt.uri`.
    public static func libvirt(
        options: DaemonOptions, configuration: DaemonConfiguration, logger: Logger,
        readiness: @escaping @Sendable (ReadinessEvent) -> Void = { _ in }, metrics: MetricsRecorder = MetricsRecorder()
    ) async throws(ImageStoreError) -> Daemon {
        let hypervisor = LibvirtHypervisor(uri: configuration.libvirt.uri, lanes: configuration.pipeline.concurrency)
        return try await Daemon(
            options: options, configuration: configuration, hypervisor: hypervisor, events: hypervisor, logger: logger,
            readiness: readiness, metrics: metrics, guestPorts: hypervisor)
    }

    /// The daemon's services in start order (see the table above), without the watchdog and the
    /// metrics exporter, which ``serviceGroup(reloads:watchdog:exporter:gracefulShutdownSignals:)``
    /// adds in front.
    /// - Parameter reloads: each element asks for a configuration reload (SIGHUP in production).
    public func services<Reloads: AsyncSequence & Sendable>(reloads: Reloads) -> [any Service]
    where Reloads.Element: Sendable {
        var services: [any Service] = [CoordinatorService(context: context)]
        if let opener = context.guestPorts {
            services.append(GuestChannelService(context: context, opener: opener))
        }
        return services + [
            EventService(context: context),
            MaintenanceService(context: context),
            ReloadService(context: context, requests: reloads),
        ]
    }

    /// The whole service group.
    /// - Parameters:
    ///   - reloads: each element asks for a reload (SIGHUP in production, a stream in tests).
    ///   - watchdog: the watchdog service, when systemd asks for one.
    ///   - exporter: the metrics exporter, when metrics are exported.
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown (none in tests).
    public func serviceGroup<Reloads: AsyncSequence & Sendable>(
        reloads: Reloads, watchdog: NotifierWatchdog? = nil, exporter: MetricsExporter? = nil,
        gracefulShutdownSignals: [UnixSignal] = []
    ) -> ServiceGroup where Reloads.Element: Sendable {
        var all: [any Service] = []
        if let watchdog { all.append(watchdog) }
        if let exporter { all.append(exporter) }
        all += services(reloads: reloads)
        let budget = context.configuration.pipeline.shutdownBudget
        var configuration = ServiceGroupConfiguration(
            services: all.map { .init(service: $0) }, gracefulShutdownSignals: gracefulShutdownSignals,
            logger: context.logger)
        // A backstop behind the coordinator's own budget: past it, everything is cancelled.
        configuration.maximumGracefulShutdownDuration = budget + .seconds(10)
        return ServiceGroup(configuration: configuration)
    }
}
