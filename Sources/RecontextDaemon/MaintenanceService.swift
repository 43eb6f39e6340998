import Logging
import RecontextCore
import ServiceLifecycle

/// Periodic work: reconciles every `pipeline.reconcile-interval`, then collects images no domain
/// refers to (older than `pipeline.collect-grace`). With reconciles off, collection still runs
/// every 300 s.
public struct MaintenanceService: Service {
    /// The shared state.
    public let context: DaemonContext

    /// Creates the service.
    public init(context: DaemonContext) {
        self.context = context
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let configuration = context.configuration
                do {
                    try await context.sleeper.sleep(for: configuration.pipeline.reconcileInterval ?? .seconds(300))
                } catch {
                    return
                }
                if configuration.pipeline.reconcileInterval != nil { await context.reconcile(trigger: .reconcile) }
                await context.coordinator.waitUntilIdle()
                await collectImages()
            }
        }
    }

    /// Removes images no domain refers to (older than the grace period).
    public func collectImages() async {
        let configuration = context.configuration
        let collector = ImageCollector(
            hypervisor: context.hypervisor, images: context.currentRuntime.images,
            grace: configuration.pipeline.collectGrace, sharedDirectory: configuration.images.shared,
            logger: context.logger)
        do {
            try await collector.collect()
        } catch {
            context.logger.warning("image collection failed", metadata: ["error": "\(error)"])
        }
    }
}
