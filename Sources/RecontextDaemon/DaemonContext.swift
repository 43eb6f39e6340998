import Logging
import RecontextConfiguration
import RecontextCore

/// What the daemon's services share: the options, the configuration in force (with the image
/// store and pipeline made from it), the hypervisor and its event source, the coordinator, the
/// metrics and the supervisor's readiness channel.
///
/// Per-domain state lives in the ``DomainCoordinator`` only; this type holds no per-domain state.
public final class DaemonContext: Sendable {
    /// Options the daemon was started with.
    public let options: DaemonOptions
    /// The hypervisor the pipeline works on.
    public let hypervisor: any Hypervisor
    /// Its event stream.
    public let events: any HypervisorEventSource
    /// The one owner of per-domain state.
    public let coordinator: DomainCoordinator
    /// Metrics (events, runs, phase timings, latency, reconnects, reloads).
    public let metrics: MetricsRecorder
    /// The base logger.
    public let logger: Logger
    /// Waits for backoff and periodic work (a test clock in tests).
    public let sleeper: any Sleeper
    let readiness: @Sendable (Daemon.ReadinessEvent) -> Void
    private let runtime: Protected<Runtime>
    /// The host-guest channel service's intake (the pipeline's insertions, finished runs).
    public let guestInbox: GuestChannelInbox
    /// Opens the host-guest channel's ports, when the daemon uses the channel.
    public let guestPorts: (any GuestPortOpener)?
    /// The per-domain lock runs (and the guest record's writes) hold.
    let lock: DomainLock

    init(
        options: DaemonOptions, runtime: Runtime, hypervisor: any Hypervisor, events: any HypervisorEventSource,
        logger: Logger, readiness: @escaping @Sendable (Daemon.ReadinessEvent) -> Void, metrics: MetricsRecorder,
        sleeper: any Sleeper, guestInbox: GuestChannelInbox, guestPorts: (any GuestPortOpener)?
    ) {
        self.guestInbox = guestInbox
        self.guestPorts = guestPorts
        self.options = options
        self.hypervisor = hypervisor
        self.events = events
        self.logger = logger
        self.readiness = readiness
        self.metrics = metrics
        self.sleeper = sleeper
        let runtime = Protected(runtime)
        self.runtime = runtime
        let configuration = runtime.withLock { $0.configuration }
        let status = StatusStore(stateDirectory: options.stateDirectory)
        let lock = DomainLock(stateDirectory: options.stateDirectory)
        self.lock = lock
        coordinator = DomainCoordinator(
            settings: DomainCoordinator.Settings(concurrency: configuration.pipeline.concurrency),
            sleeper: sleeper, logger: logger,
            runner: { work in
                let pipeline = runtime.withLock { $0.pipeline }
                let report = await lock.withLock(work.uuid) {
                    await pipeline.run(uuid: work.uuid, trigger: work.trigger, eventTime: work.eventTime)
                }
                metrics.recordRun(report, eventTime: work.eventTime)
                // The status file is written here, on the run's own task, never in the coordinator.
                await Blocking.run { status.record(report) }
                return report
            },
            onFinished: { finished in
                metrics.recordManagedDomains(finished.managedDomains)
                guestInbox.finished(finished.report, addChannel: finished.report.addsGuestChannel)
            })
    }

    /// The configuration in force.
    public var configuration: DaemonConfiguration { runtime.withLock { $0.configuration } }

    /// The configuration's parts (image store, pipeline).
    var currentRuntime: Runtime { runtime.withLock { $0 } }

    /// Replaces the configuration's parts (a reload).
    func replace(_ next: Runtime) {
        runtime.withLock { $0 = next }
    }

    /// Submits a run for every running or paused domain (start-up, reconnect, reload, periodic).
    /// Unmanaged domains cost one metadata read and are skipped by the pipeline.
    func reconcile(trigger: Trigger) async {
        do {
            let domains = try await hypervisor.activeDomains()
            await coordinator.submit(all: domains.map(\.uuid), trigger: trigger)
            logger.info("reconcile", metadata: ["domains": "\(domains.count)", "trigger": "\(trigger)"])
        } catch {
            logger.warning("reconcile failed", metadata: ["error": "\(error)"])
        }
    }
}
