import RecontextCore

/// What ``GuestPort/receive(maxBytes:)`` found.
public enum GuestPortRead: Sendable, Hashable {
    /// Bytes from the guest.
    case bytes([UInt8])
    /// Nothing queued now.
    case wouldBlock
    /// The port closed (the domain stopped or left, the connection closed).
    case end
}

/// What a port tells its reader (on a thread of the transport's: it must not block).
public enum GuestPortEvent: Sendable, Hashable {
    /// Bytes can be received.
    case readable
    /// The port ended.
    case ended
}

/// The host end of one domain's guest channel.
public protocol GuestPort: Sendable {
    /// Takes bytes already received. Never blocks; may be called from the event callback.
    func receive(maxBytes: Int) -> GuestPortRead
    /// Sends one line. Blocking work runs off the cooperative pool.
    func send(_ bytes: [UInt8]) async throws(HypervisorError)
    /// Closes the port. Idempotent.
    func close() async

    /// False once the transport under the port is gone (the daemon reconnected to libvirt).
    var isOpen: Bool { get }
}

/// Opens guest ports (libvirt's `virDomainOpenChannel`; a fake in tests) and adds the channel
/// device to domains that ask for it.
public protocol GuestPortOpener: Sendable {
    /// Opens the channel ``GuestProtocol/portName`` of domain `uuid`; `onEvent` is told when bytes
    /// arrive or the port ends.
    /// - Throws: ``HypervisorError``; ``GuestPortUnavailable`` (as a permanent error's message)
    ///   when the domain has no such channel.
    func openGuestPort(uuid: String, onEvent: @escaping @Sendable (GuestPortEvent) -> Void)
        async throws(HypervisorError) -> any GuestPort

    /// Adds the channel device to domain `uuid`, live and (when persistent) to its definition;
    /// only to the definition when the running domain cannot take it.
    func addGuestChannel(uuid: String) async throws(HypervisorError) -> GuestChannelAddition
}

/// Where an added channel took effect.
public enum GuestChannelAddition: Sendable, Hashable {
    /// In the running domain (and its definition): the port can be opened now.
    case live
    /// Only in the persistent definition: the running domain has no virtio-serial controller,
    /// which libvirt 9.0 cannot hot-plug; the port appears at the domain's next boot.
    case nextBoot
}

/// The channel device recontextd adds to a domain that asks for it (`<context channel="add">`).
public enum GuestChannelDevice {
    /// The device XML: a UNIX socket whose path libvirt picks, and the documented port name.
    public static let xml =
        "<channel type='unix'><source mode='bind'/><target type='virtio' name='\(GuestProtocol.portName)'/></channel>"
}
