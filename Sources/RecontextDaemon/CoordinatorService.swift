import Logging
import RecontextCore
import ServiceLifecycle

/// Runs the ``DomainCoordinator`` as a service: its runs and retries live inside this `run()`.
///
/// On graceful shutdown the coordinator drains within `pipeline.shutdown-budget` (running runs
/// finish their swap; past the budget they are cancelled and the domains left are logged); then
/// the hypervisor connection is closed, since no run needs it any more.
public struct CoordinatorService: Service {
    /// The shared state.
    public let context: DaemonContext

    /// Creates the service.
    public init(context: DaemonContext) {
        self.context = context
    }

    public func run() async throws {
        let coordinator = context.coordinator
        let budget = context.configuration.pipeline.shutdownBudget
        await withDiscardingTaskGroup { group in
            group.addTask { await coordinator.run() }
            // Graceful shutdown, or cancellation of the group: drain either way.
            try? await gracefulShutdown()
            await coordinator.shutdown(budget: budget)
        }
        await context.events.disconnect()
        context.logger.notice("recontextd stopped")
    }
}
