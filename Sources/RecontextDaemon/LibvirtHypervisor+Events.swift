import RecontextCore
import Virt

// MARK: - The event source over libvirt

extension LibvirtHypervisor: HypervisorEventSource {
    public var endpoint: String { uri }

    public func subscribe() async throws(HypervisorError) -> AsyncStream<ObservedEvent> {
        // connect() opens the pipeline's connection and one for events; the registrations are the
        // only calls ever made on the latter (libvirtd 9.0 crashed cleaning up a client that had
        // event callbacks and a request in flight).
        let events: DomainEventStream
        do {
            events = try await Blocking.run { () throws(VirtError) -> DomainEventStream in
                try self.connect().events()
            }
        } catch {
            throw HypervisorError(error, operation: "connect to \(uri)")
        }
        let iterator = EventIterator(events.makeAsyncIterator())
        return AsyncStream(unfolding: { await iterator.next() })
    }

    /// Closes the connection and stops libvirt's event-loop thread (the daemon calls it once, at
    /// shutdown, after the last run). Both block (an RPC, a join): off the cooperative pool.
    public func disconnect() async {
        await disconnectAndWait()
        await Blocking.run { LibvirtEventLoop.stop() }
    }
}

/// Maps libvirt's events to observed events, ending after the connection closed.
///
/// `@unchecked Sendable`: `AsyncStream(unfolding:)` calls `next()` from its single consumer,
/// one call at a time, so the iterator is never used concurrently.
private final class EventIterator: @unchecked Sendable {
    private var base: AsyncStream<ConnectionEvent>.Iterator
    private var closed = false

    init(_ base: AsyncStream<ConnectionEvent>.Iterator) { self.base = base }

    func next() async -> ObservedEvent? {
        guard !closed, let event = await base.next() else { return nil }
        let type = MetricsRecorder.eventType(event)
        switch event {
        case .closed(let reason):
            closed = true
            return ObservedEvent(.closed(reason: "\(reason)"), type: type)
        case .domain(let domainEvent):
            let kind = HypervisorEvent(domainEvent).map(ObservedEvent.Kind.domain) ?? .ignored
            return ObservedEvent(kind, type: type, receivedAt: domainEvent.receivedAt)
        }
    }
}
