import Logging
import RecontextConfiguration
import RecontextCore
import ServiceLifecycle

/// Reloads the configuration on request (SIGHUP); the last service, so the first to stop: it
/// tells the supervisor `STOPPING=1` as soon as a graceful shutdown begins.
public struct ReloadService<Requests: AsyncSequence & Sendable>: Service where Requests.Element: Sendable {
    /// The shared state.
    public let context: DaemonContext
    /// Each element asks for a reload.
    public let requests: Requests

    /// Creates the service.
    public init(context: DaemonContext, requests: Requests) {
        self.context = context
        self.requests = requests
    }

    public func run() async throws {
        let context = self.context
        let requests = self.requests
        await cancelWhenGracefulShutdown {
            do {
                for try await _ in requests { await reload() }
            } catch {
                context.logger.warning("reload requests ended", metadata: ["error": "\(error)"])
            }
        }
        context.readiness(.stopping)
    }

    /// Re-reads the configuration; on success, re-renders every managed domain (only those whose
    /// desired content changed get a new image). On failure keeps the old configuration.
    public func reload() async {
        context.readiness(.reloading)
        context.logger.notice("reloading configuration", metadata: ["file": "\(context.options.configurationPath)"])
        defer { context.readiness(.ready) }
        let configuration: DaemonConfiguration
        do {
            let options = context.options
            configuration = try await Blocking.run { () throws(ConfigurationErrors) in
                try options.loadConfiguration()
            }
        } catch {
            for problem in error.problems {
                context.logger.error("invalid configuration, keeping the old one", metadata: ["problem": "\(problem)"])
            }
            return
        }
        warnAboutRestartOnlyKeys(configuration)
        do {
            let next = try await Runtime.make(
                configuration: configuration, hypervisor: context.hypervisor, logger: context.logger,
                observer: context.guestInbox)
            context.replace(next)
        } catch {
            context.logger.error(
                "cannot apply the new configuration, keeping the old one", metadata: ["error": "\(error)"])
            return
        }
        context.metrics.recordReload()
        await context.reconcile(trigger: .reload)
    }

    /// Keys that a running daemon cannot change take effect at the next restart: say so.
    private func warnAboutRestartOnlyKeys(_ configuration: DaemonConfiguration) {
        let current = context.configuration
        if configuration.libvirt.uri != context.events.endpoint {
            context.logger.warning(
                "libvirt.uri changed; it takes effect at the next restart",
                metadata: ["libvirt.uri": "\(configuration.libvirt.uri)"])
        }
        if configuration.pipeline.concurrency != context.coordinator.settings.concurrency {
            context.logger.warning("pipeline.concurrency changed; it takes effect at the next restart")
        }
        if configuration.metrics != current.metrics || configuration.logTarget != current.logTarget {
            context.logger.warning("metrics.* or log.target changed; they take effect at the next restart")
        }
    }
}
