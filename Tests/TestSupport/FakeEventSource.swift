import RecontextCore
import Synchronization

/// An in-memory ``HypervisorEventSource``: tests emit events, drop the connection, and make
/// subscriptions fail.
///
/// - Important: For tests only. Thread-safe.
public final class FakeEventSource: HypervisorEventSource {
    private struct State {
        var continuation: AsyncStream<ObservedEvent>.Continuation?
        var failuresLeft = 0
        var subscriptions = 0
        var failedSubscriptions = 0
        var disconnects = 0
    }
    private let state = Mutex(State())

    public let endpoint = "fake:///events"

    /// Creates a source that accepts subscriptions.
    public init() {}

    /// Successful subscriptions so far (the first connection and every reconnect).
    public var subscriptions: Int { state.withLock { $0.subscriptions } }
    /// Subscriptions refused so far.
    public var failedSubscriptions: Int { state.withLock { $0.failedSubscriptions } }
    /// Calls of ``disconnect()``.
    public var disconnects: Int { state.withLock { $0.disconnects } }
    /// Whether a subscriber is connected now.
    public var isConnected: Bool { state.withLock { $0.continuation != nil } }

    /// Makes the next `count` subscriptions fail with a transient error (libvirtd away).
    public func failSubscriptions(_ count: Int) {
        state.withLock { $0.failuresLeft = count }
    }

    /// Delivers an event to the current subscriber.
    /// - Returns: whether a subscriber was there.
    @discardableResult
    public func emit(_ event: HypervisorEvent, receivedAt: ContinuousClock.Instant = .now) -> Bool {
        let continuation = state.withLock { $0.continuation }
        guard let continuation else { return false }
        continuation.yield(ObservedEvent(.domain(event), type: "fake", receivedAt: receivedAt))
        return true
    }

    /// Loses the connection: the subscriber sees it closed and its stream ends.
    public func dropConnection(reason: String = "end of file from the fake") {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.yield(ObservedEvent(.closed(reason: reason), type: "connection_closed"))
        continuation?.finish()
    }

    public func subscribe() async throws(HypervisorError) -> AsyncStream<ObservedEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ObservedEvent.self)
        let previous: AsyncStream<ObservedEvent>.Continuation?? = state.withLock { state in
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                state.failedSubscriptions += 1
                return .none
            }
            state.subscriptions += 1
            defer { state.continuation = continuation }
            return .some(state.continuation)
        }
        guard let previous else {
            throw HypervisorError(.transient, operation: "connect to \(endpoint)", message: "connection refused")
        }
        previous?.finish()
        return stream
    }

    public func disconnect() async {
        let continuation = state.withLock { state in
            state.disconnects += 1
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.finish()
    }
}
