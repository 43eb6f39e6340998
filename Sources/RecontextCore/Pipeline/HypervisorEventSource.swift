/// The hypervisor's event stream over one connection: what the daemon's event service
/// subscribes to, reconnects and re-subscribes.
///
/// The daemon implements it over libvirt; in-process daemon tests use a fake.
public protocol HypervisorEventSource: Sendable {
    /// Where it connects, for logs (libvirt's URI).
    var endpoint: String { get }

    /// Opens a new connection (replacing any previous one) and subscribes to domain events.
    ///
    /// The stream ends when the connection is lost; the caller then subscribes again.
    /// - Throws: ``HypervisorError`` when the hypervisor cannot be reached.
    func subscribe() async throws(HypervisorError) -> AsyncStream<ObservedEvent>

    /// Closes the connection (at shutdown, once no run needs it).
    func disconnect() async
}

/// One event as received, before the trigger logic looks at it.
public struct ObservedEvent: Sendable, Hashable {
    /// What it means for the daemon.
    public enum Kind: Sendable, Hashable {
        /// An event the trigger logic looks at.
        case domain(HypervisorEvent)
        /// An event no trigger cares about (tray changes, device events, other namespaces).
        case ignored
        /// The connection was lost; the stream ends after it.
        case closed(reason: String)
    }

    /// What it means.
    public var kind: Kind
    /// A bounded name for metrics (`resumed_migrated`, `tray_change`, `connection_closed`, ...).
    public var type: String
    /// When it was received.
    public var receivedAt: ContinuousClock.Instant

    /// Creates an observed event.
    public init(_ kind: Kind, type: String, receivedAt: ContinuousClock.Instant = .now) {
        self.kind = kind
        self.type = type
        self.receivedAt = receivedAt
    }
}
