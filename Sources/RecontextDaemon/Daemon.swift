import Foundation
import Logging
import RecontextCore
import ServiceLifecycle
import Synchronization
import UnixSignals
import Virt

#if canImport(Glibc)
    import Glibc
#endif

/// Where a daemon (or a one-shot command) finds its configuration and keeps its state.
public struct DaemonOptions: Sendable {
    /// The configuration file.
    public var configurationPath: String
    /// `--connect URI`: overrides `libvirt.uri`.
    public var uriOverride: String?
    /// Lock and status files (`$RUNTIME_DIRECTORY` under systemd, else `/run/recontextd`).
    public var stateDirectory: String
    /// `--log-level`: overrides `log.level`.
    public var logLevelOverride: Logger.Level?
    /// `--log-target`: overrides `log.target`.
    public var logTargetOverride: DaemonConfiguration.LogTarget?

    /// The state directory systemd gives us (`RuntimeDirectory=`), else `/run/recontextd`.
    public static var defaultStateDirectory: String {
        ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/run/recontextd"
    }

    /// Creates options.
    public init(
        configurationPath: String = DaemonConfiguration.defaultPath, uriOverride: String? = nil,
        stateDirectory: String = DaemonOptions.defaultStateDirectory, logLevelOverride: Logger.Level? = nil,
        logTargetOverride: DaemonConfiguration.LogTarget? = nil
    ) {
        self.configurationPath = configurationPath
        self.uriOverride = uriOverride
        self.stateDirectory = stateDirectory
        self.logLevelOverride = logLevelOverride
        self.logTargetOverride = logTargetOverride
    }

    /// Loads and validates the configuration file, applying the overrides.
    /// - Throws: ``ConfigurationErrors`` listing every problem with file, line and key.
    public func loadConfiguration() throws(ConfigurationErrors) -> DaemonConfiguration {
        var configuration = try ConfigurationLoader.load(path: configurationPath, allowMissing: false)
        if let uriOverride { configuration.libvirt.uri = uriOverride }
        if let logLevelOverride { configuration.logLevel = logLevelOverride }
        if let logTargetOverride { configuration.logTarget = logTargetOverride }
        return configuration
    }
}

/// The parts of the daemon that one configuration determines, replaced as a whole on reload.
public struct Runtime: Sendable {
    /// The configuration they were made from.
    public let configuration: DaemonConfiguration
    /// The image directory.
    public let images: ISOImageStore
    /// The pipeline.
    public let pipeline: ContextPipeline

    /// Builds the parts; creates the image directory if needed.
    /// - Throws: ``ImageStoreError`` when the image directory is unusable.
    public init(configuration: DaemonConfiguration, hypervisor: any Hypervisor, logger: Logger) throws(ImageStoreError)
    {
        self.configuration = configuration
        var group: gid_t?
        if let name = configuration.images.group {
            guard let entry = getgrnam(name) else {
                throw ImageStoreError("images.group: no group named '\(name)' on this host", isTransient: false)
            }
            group = entry.pointee.gr_gid
        }
        images = ISOImageStore(
            directory: configuration.images.directory, mode: mode_t(configuration.images.mode), group: group,
            maxImageBytes: configuration.images.maxSize)
        try images.prepare()
        pipeline = ContextPipeline(
            hypervisor: hypervisor, images: images, settings: PipelineSettings(configuration: configuration),
            logger: logger)
    }
}

/// `recontextd run`: the host service.
///
/// Connects to libvirt (retrying with backoff), subscribes to domain events, reconciles every
/// running domain, then turns events into pipeline runs. On a lost connection it reconnects,
/// subscribes again and reconciles (events missed meanwhile are made good by the reconcile).
/// Reconciles periodically, collects unreferenced images, reloads its configuration on SIGHUP,
/// and on SIGTERM stops taking work and lets running pipelines finish their swap.
public final class Daemon: Service, Sendable {
    /// Options it was started with.
    public let options: DaemonOptions
    /// The libvirt adapter (one connection, replaced on reconnect).
    public let hypervisor: LibvirtHypervisor
    /// The per-domain scheduler.
    public let scheduler: DomainScheduler
    /// Event-to-run logic.
    public let controller: Controller
    /// Runs again later what failed transiently.
    public let retryLater: RetryLater
    private let runtime: Protected<Runtime>
    private let status: StatusStore
    private let lock: DomainLock
    private let logger: Logger
    private let readiness: @Sendable (ReadinessEvent) -> Void
    private let counterState = Protected(Counters())
    /// Metrics (events, runs, phase timings, latency, reconnects, reloads).
    public let metrics: MetricsRecorder

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

    /// Numbers for metrics and tests.
    public struct Counters: Sendable, Hashable {
        /// Connections made after the first.
        public var reconnects = 0
        /// Events received, by kind.
        public var events = 0
        /// Reloads done.
        public var reloads = 0
        /// Runs finished, by result.
        public var runs: [String: Int] = [:]
    }

    /// Counters so far.
    public var counters: Counters { counterState.withLock { $0 } }

    /// Builds a daemon from options and an already validated configuration.
    /// - Parameters:
    ///   - readiness: told about readiness, reloads, stopping and status (``Notifier``).
    ///   - metrics: where events and runs are counted (by default with `MetricsSystem`'s factory).
    /// - Throws: ``ImageStoreError`` when the image directory is unusable.
    public init(
        options: DaemonOptions, configuration: DaemonConfiguration, logger: Logger,
        readiness: @escaping @Sendable (ReadinessEvent) -> Void = { _ in }, metrics: MetricsRecorder = MetricsRecorder()
    ) throws(ImageStoreError) {
        self.options = options
        self.logger = logger
        self.readiness = readiness
        self.metrics = metrics
        let hypervisor = LibvirtHypervisor(uri: configuration.libvirt.uri)
        self.hypervisor = hypervisor
        let runtime = Protected(try Runtime(configuration: configuration, hypervisor: hypervisor, logger: logger))
        self.runtime = runtime
        let status = StatusStore(stateDirectory: options.stateDirectory)
        let lock = DomainLock(stateDirectory: options.stateDirectory)
        self.status = status
        self.lock = lock
        let counters = self.counterState
        // Transient failures are run again later (the scheduler is known only once made).
        let schedulerBox = Protected<DomainScheduler?>(nil)
        let retryLater = RetryLater { uuid in
            await schedulerBox.value?.submit(uuid, trigger: .retry)
        }
        self.retryLater = retryLater
        let scheduler = DomainScheduler(
            concurrency: configuration.pipeline.concurrency,
            runner: { uuid, trigger in
                let pipeline = runtime.withLock { $0.pipeline }
                let eventTime = metrics.takePendingEvent(for: uuid)
                let report = await lock.withLock(uuid) { await pipeline.run(uuid: uuid, trigger: trigger) }
                metrics.recordRun(report, eventTime: eventTime)
                return report
            },
            onReport: { report in
                status.record(report)
                counters.withLock { $0.runs[report.result, default: 0] += 1 }
                Task {
                    if let delay = await retryLater.handle(report) {
                        logger.warning(
                            "run failed with a transient error; retrying later",
                            metadata: ["domain.uuid": "\(report.uuid)", "retry.after": "\(delay)"])
                    }
                }
            })
        schedulerBox.withLock { $0 = scheduler }
        self.scheduler = scheduler
        self.controller = Controller(scheduler: scheduler, hypervisor: hypervisor, logger: logger)
    }

    /// The configuration in force.
    public var configuration: DaemonConfiguration { runtime.withLock { $0.configuration } }

    // MARK: - Service

    public func run() async throws {
        logger.notice(
            "recontextd starting",
            metadata: ["libvirt.uri": "\(hypervisor.uri)", "host.name": "\(configuration.host.name)"])
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.eventLoop() }
                group.addTask { await self.periodicWork() }
                group.addTask {
                    for await _ in signals { await self.reload() }
                }
            }
        }
        readiness(.stopping)
        logger.notice("stopping: waiting for running pipelines to finish")
        await retryLater.cancelAll()
        await scheduler.drain()
        hypervisor.disconnect()
        logger.notice("recontextd stopped")
    }

    // MARK: - Events

    private func eventLoop() async {
        var backoff: Duration = .milliseconds(500)
        var first = true
        while !Task.isCancelled {
            let events: DomainEventStream
            do {
                let hypervisor = self.hypervisor
                events = try await Blocking.run { () throws(VirtError) -> DomainEventStream in
                    try hypervisor.connect().events()
                }
            } catch {
                let maxBackoff = configuration.libvirt.reconnectMaxBackoff
                logger.warning(
                    "cannot connect to libvirt, retrying",
                    metadata: ["error": "\(error)", "libvirt.uri": "\(hypervisor.uri)", "backoff": "\(backoff)"])
                readiness(.status("waiting for libvirt at \(hypervisor.uri)"))
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, maxBackoff)
                continue
            }
            backoff = .milliseconds(500)
            if !first {
                counterState.withLock { $0.reconnects += 1 }
                metrics.recordReconnect()
            }
            logger.notice(
                first ? "connected to libvirt" : "reconnected to libvirt",
                metadata: ["libvirt.uri": "\(hypervisor.uri)"])
            await reconcile(trigger: .reconcile)
            if first {
                await scheduler.waitUntilIdle()
                readiness(.ready)
                readiness(.status("watching domains"))
                first = false
            }
            for await event in events {
                counterState.withLock { $0.events += 1 }
                metrics.recordEvent(event)
                guard let mapped = HypervisorEvent(event) else { continue }
                if case .connectionClosed(let reason) = mapped {
                    logger.warning("libvirt connection closed, reconnecting", metadata: ["reason": "\(reason)"])
                    readiness(.status("reconnecting to libvirt"))
                    break
                }
                // Event-to-inserted latency: the run this event starts takes its receive time.
                var pending: (uuid: String, time: ContinuousClock.Instant)?
                if case .domain(let domainEvent) = event,
                    metrics.notePendingEvent(for: domainEvent.domain.uuid, at: domainEvent.receivedAt)
                {
                    pending = (domainEvent.domain.uuid, domainEvent.receivedAt)
                }
                if await controller.handle(mapped) == nil, let pending {
                    metrics.dropPendingEvent(for: pending.uuid, at: pending.time)
                }
            }
        }
    }

    private func reconcile(trigger: Trigger) async {
        do {
            let count = try await controller.reconcileAll(trigger: trigger)
            logger.info("reconcile", metadata: ["domains": "\(count)", "trigger": "\(trigger)"])
        } catch {
            logger.warning("reconcile failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Periodic reconcile and image collection

    private func periodicWork() async {
        while !Task.isCancelled {
            let interval = configuration.pipeline.reconcileInterval ?? .seconds(300)
            do { try await Task.sleep(for: interval) } catch { return }
            if configuration.pipeline.reconcileInterval != nil { await reconcile(trigger: .reconcile) }
            await scheduler.waitUntilIdle()
            await collectImages()
        }
    }

    /// Removes images no domain refers to (older than the grace period).
    public func collectImages() async {
        let images = runtime.withLock { $0.images }
        let shared = configuration.images.shared
        let grace = configuration.pipeline.collectGrace
        let collector = ImageCollector(
            hypervisor: hypervisor, images: images, grace: grace, sharedDirectory: shared, logger: logger)
        do {
            try await collector.collect()
        } catch {
            logger.warning("image collection failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Reload

    /// Re-reads the configuration; on success, re-renders every managed domain (only those whose
    /// desired content changed get a new image). On failure keeps the old configuration.
    public func reload() async {
        readiness(.reloading)
        logger.notice("reloading configuration", metadata: ["file": "\(options.configurationPath)"])
        defer { readiness(.ready) }
        let configuration: DaemonConfiguration
        do {
            configuration = try options.loadConfiguration()
        } catch {
            for problem in error.problems {
                logger.error("invalid configuration, keeping the old one", metadata: ["problem": "\(problem)"])
            }
            return
        }
        if configuration.libvirt.uri != hypervisor.uri {
            logger.warning(
                "libvirt.uri changed; it takes effect at the next restart",
                metadata: ["libvirt.uri": "\(configuration.libvirt.uri)"])
        }
        if configuration.pipeline.concurrency != scheduler.concurrency {
            logger.warning("pipeline.concurrency changed; it takes effect at the next restart")
        }
        let current = self.configuration
        if configuration.metrics != current.metrics || configuration.logTarget != current.logTarget {
            logger.warning("metrics.* or log.target changed; they take effect at the next restart")
        }
        do {
            let next = try Runtime(configuration: configuration, hypervisor: hypervisor, logger: logger)
            runtime.withLock { $0 = next }
        } catch {
            logger.error("cannot apply the new configuration, keeping the old one", metadata: ["error": "\(error)"])
            return
        }
        counterState.withLock { $0.reloads += 1 }
        metrics.recordReload()
        await reconcile(trigger: .reload)
    }
}
