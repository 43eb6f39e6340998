import Logging

/// Turns hypervisor events into pipeline runs, and reconciles every domain on demand.
///
/// The daemon feeds it events in the order libvirt delivered them; it decides with a
/// ``TriggerPolicy`` and submits to the ``DomainScheduler``. Handling an event never waits for a
/// pipeline run.
public actor Controller {
    private var policy = TriggerPolicy()
    /// The scheduler that owns per-domain work.
    public let scheduler: DomainScheduler
    private let hypervisor: any Hypervisor
    private let logger: Logger
    /// Events seen, by kind (for metrics and tests).
    public private(set) var eventCounts: [String: Int] = [:]

    /// Creates a controller over a scheduler and the hypervisor it lists domains from.
    public init(scheduler: DomainScheduler, hypervisor: any Hypervisor, logger: Logger) {
        self.scheduler = scheduler
        self.hypervisor = hypervisor
        self.logger = logger
    }

    /// Handles one event; returns the trigger it started, if any.
    @discardableResult
    public func handle(_ event: HypervisorEvent) async -> Trigger? {
        eventCounts[Self.kind(of: event), default: 0] += 1
        guard let trigger = policy.trigger(for: event) else { return nil }
        if case .lifecycle(let domain, _) = event {
            await scheduler.submit(domain.uuid, trigger: trigger)
        } else if case .contextMetadataChanged(let domain) = event {
            await scheduler.submit(domain.uuid, trigger: trigger)
        }
        return trigger
    }

    /// Submits a run for every running or paused domain (start-up, reconnect, reload, periodic).
    ///
    /// Unmanaged domains cost one metadata read and are skipped by the pipeline.
    /// - Returns: how many domains were submitted.
    @discardableResult
    public func reconcileAll(trigger: Trigger) async throws(HypervisorError) -> Int {
        let domains = try await hypervisor.activeDomains()
        for domain in domains { await scheduler.submit(domain.uuid, trigger: trigger) }
        logger.debug("reconcile submitted", metadata: ["domains": "\(domains.count)", "trigger": "\(trigger)"])
        return domains.count
    }

    /// Submits one domain (e.g. `recontextd apply`).
    public func submit(_ uuid: String, trigger: Trigger) async {
        await scheduler.submit(uuid, trigger: trigger)
    }

    private static func kind(of event: HypervisorEvent) -> String {
        switch event {
        case .lifecycle(_, let signal): "lifecycle.\(signal)"
        case .contextMetadataChanged: "metadata"
        case .connectionClosed: "connection-closed"
        }
    }
}
