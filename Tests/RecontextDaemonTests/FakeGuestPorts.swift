import RecontextCore
import RecontextDaemon
import Synchronization

/// Guest ports in memory: the test plays the guest (``FakeGuestPort/guestWrites(_:)``) and reads
/// what the host sent (``FakeGuestPort/sentLines``). Events are delivered on the caller's thread,
/// as libvirt's event loop would on its own.
final class FakeGuestPorts: GuestPortOpener {
    struct State {
        var withChannel: Set<String> = []
        var ports: [String: [FakeGuestPort]] = [:]
        var added: [String] = []
    }
    private let state = Mutex(State())

    init() {}

    /// Gives domain `uuid` the channel device.
    func addChannel(to uuid: String) {
        state.withLock { _ = $0.withChannel.insert(uuid) }
    }

    /// Every port opened for `uuid`, oldest first.
    func ports(of uuid: String) -> [FakeGuestPort] {
        state.withLock { $0.ports[uuid] ?? [] }
    }

    /// The port opened last for `uuid`.
    func port(of uuid: String) -> FakeGuestPort? { ports(of: uuid).last }

    /// The domains whose channel device the daemon added.
    var added: [String] { state.withLock { $0.added } }

    func openGuestPort(uuid: String, onEvent: @escaping @Sendable (GuestPortEvent) -> Void)
        async throws(HypervisorError) -> any GuestPort
    {
        try state.withLock { state throws(HypervisorError) -> FakeGuestPort in
            guard state.withChannel.contains(uuid) else {
                throw HypervisorError(.unsupported, operation: "open guest channel", message: "cannot find channel")
            }
            let port = FakeGuestPort(onEvent: onEvent)
            state.ports[uuid, default: []].append(port)
            return port
        }
    }

    func addGuestChannel(uuid: String) async throws(HypervisorError) -> GuestChannelAddition {
        state.withLock {
            $0.withChannel.insert(uuid)
            $0.added.append(uuid)
        }
        return .live
    }
}

/// One fake port.
final class FakeGuestPort: GuestPort {
    struct State {
        var toHost: [UInt8] = []
        var sent: [String] = []
        var closed = false
        var receives = 0
    }
    private let state = Mutex(State())
    private let onEvent: @Sendable (GuestPortEvent) -> Void

    init(onEvent: @escaping @Sendable (GuestPortEvent) -> Void) {
        self.onEvent = onEvent
    }

    /// The guest writes `text`; the host is told the port is readable.
    func guestWrites(_ text: String) {
        guestWrites(Array(text.utf8))
    }

    /// The guest writes `bytes`; the host is told the port is readable.
    func guestWrites(_ bytes: [UInt8]) {
        state.withLock { $0.toHost += bytes }
        onEvent(.readable)
    }

    /// The port ends from the guest's side (the domain stopped, the socket closed).
    func end() {
        onEvent(.ended)
    }

    /// Lines the host sent, in order.
    var sentLines: [String] { state.withLock { $0.sent } }
    /// Whether the host closed the port.
    var isClosed: Bool { state.withLock { $0.closed } }
    /// The transport is there (a test turns it off as a reconnect would).
    let transport = Mutex(true)
    var isOpen: Bool { transport.withLock { $0 } }
    /// Bytes the guest wrote that the host has not read.
    var unread: Int { state.withLock { $0.toHost.count } }

    func receive(maxBytes: Int) -> GuestPortRead {
        state.withLock { state in
            if state.closed { return .end }
            guard !state.toHost.isEmpty else { return .wouldBlock }
            let count = min(maxBytes, state.toHost.count)
            defer { state.toHost.removeFirst(count) }
            return .bytes(Array(state.toHost[..<count]))
        }
    }

    func send(_ bytes: [UInt8]) async throws(HypervisorError) {
        try state.withLock { state throws(HypervisorError) in
            guard !state.closed else {
                throw HypervisorError(.transient, operation: "send", message: "closed")
            }
            state.sent.append(String(decoding: bytes, as: UTF8.self))
        }
    }

    func close() async {
        state.withLock { $0.closed = true }
    }
}
