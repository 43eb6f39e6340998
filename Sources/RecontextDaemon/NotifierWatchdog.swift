import ServiceLifecycle

// MARK: - NotifierWatchdog

/// Sends `WATCHDOG=1` every ``interval`` (half of `WatchdogSec=`) while the daemon is healthy.
///
/// Each ping first awaits `healthCheck` (the daemon passes a hop through its scheduler actor):
/// if the cooperative thread pool or the scheduler is stuck, pings stop and systemd restarts the
/// service. Put it first in the `ServiceGroup`: services stop in reverse order, so it keeps
/// pinging while the daemon drains its running pipelines.
public struct NotifierWatchdog: Service {
    /// The notifier.
    public let notifier: Notifier
    /// Time between pings.
    public let interval: Duration
    private let healthCheck: @Sendable () async -> Void

    /// Creates the service.
    /// - Parameters:
    ///   - notifier: sends the pings.
    ///   - interval: time between pings (``Notifier/watchdogInterval``).
    ///   - healthCheck: awaited before each ping; it should return promptly when all is well.
    public init(notifier: Notifier, interval: Duration, healthCheck: @escaping @Sendable () async -> Void = {}) {
        self.notifier = notifier
        self.interval = interval
        self.healthCheck = healthCheck
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await healthCheck()
                notifier.send("WATCHDOG=1")
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}
