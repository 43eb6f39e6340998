import Logging
import RecontextCore
import ServiceLifecycle

/// Connects to the hypervisor (retrying with backoff), subscribes to domain events, reconciles
/// every running domain, then hands events to the coordinator. When the connection is lost it
/// connects, subscribes and reconciles again: events missed meanwhile are made good by the
/// reconcile. Tells the supervisor READY after the first reconcile's runs are done.
public struct EventService: Service {
    /// The shared state.
    public let context: DaemonContext

    /// Creates the service.
    public init(context: DaemonContext) {
        self.context = context
    }

    public func run() async throws {
        let endpoint = context.events.endpoint
        context.logger.notice(
            "recontextd starting",
            metadata: ["libvirt.uri": "\(endpoint)", "host.name": "\(context.configuration.host.name)"])
        await cancelWhenGracefulShutdown {
            var first = true
            while !Task.isCancelled {
                guard let events = await connect() else { return }
                if !first { context.metrics.recordReconnect() }
                context.logger.notice(
                    first ? "connected to libvirt" : "reconnected to libvirt", metadata: ["libvirt.uri": "\(endpoint)"])
                await context.reconcile(trigger: .reconcile)
                if first {
                    await context.coordinator.waitUntilIdle()
                    context.readiness(.ready)
                    context.readiness(.status("watching domains"))
                    first = false
                }
                await consume(events)
            }
        }
    }

    /// Subscribes, retrying with a doubling backoff up to `libvirt.reconnect-max-backoff`.
    /// - Returns: the event stream, or `nil` when cancelled.
    private func connect() async -> AsyncStream<ObservedEvent>? {
        var backoff: Duration = .milliseconds(500)
        while !Task.isCancelled {
            do {
                return try await context.events.subscribe()
            } catch {
                context.logger.warning(
                    "cannot connect to libvirt, retrying",
                    metadata: [
                        "error": "\(error)", "libvirt.uri": "\(context.events.endpoint)", "backoff": "\(backoff)",
                    ])
                context.readiness(.status("waiting for libvirt at \(context.events.endpoint)"))
                do { try await context.sleeper.sleep(for: backoff) } catch { return nil }
                backoff = min(backoff * 2, context.configuration.libvirt.reconnectMaxBackoff)
            }
        }
        return nil
    }

    /// Hands events to the coordinator until the stream ends (connection lost) or the task is
    /// cancelled.
    private func consume(_ events: AsyncStream<ObservedEvent>) async {
        for await event in events {
            context.metrics.recordEvent(type: event.type)
            switch event.kind {
            case .domain(let domainEvent):
                if case .lifecycle(let domain, .startedMigrated) = domainEvent {
                    // Open the guest's port while the migration finishes: the guest then resumes
                    // with the host end connected and reads "generation N" the moment it is sent.
                    context.guestInbox.yield(.arriving(uuid: domain.uuid))
                }
                await context.coordinator.handle(domainEvent, receivedAt: event.receivedAt)
            case .ignored:
                continue
            case .closed(let reason):
                context.logger.warning("libvirt connection closed, reconnecting", metadata: ["reason": "\(reason)"])
                context.readiness(.status("reconnecting to libvirt"))
                return
            }
        }
    }
}
