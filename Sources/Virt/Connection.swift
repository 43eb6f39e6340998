internal import CLibvirt
import FoundationEssentials
import Synchronization
import Threads

#if canImport(Glibc)
    import Glibc
#endif

/// A connection to a libvirt driver, such as `qemu:///system` or `test:///default`.
///
/// The corresponding C type is `virConnectPtr`. The connection is closed by ``close()`` or when
/// the last reference goes away.
///
/// The connection may be used from several threads, which is why this class is
/// `@unchecked Sendable`: its only mutable state is behind a `Mutex`. Its calls, and those of its
/// ``Domain``s, pass one at a time (``gate``): libvirt 9.0 crashed (SIGSEGV in the client's IO
/// loop, `virNetClientSendWithReply` -> `g_main_context_dispatch`) with two threads' calls in
/// flight on one connection while the daemon went away, and libvirtd crashed cleaning up a
/// killed client that had several requests in flight (issue 11). A caller that wants calls to
/// overlap opens a connection per worker.
///
/// Every call takes a libvirt reference on the handle for its duration (``withHandle(_:_:)``), so
/// ``close()`` never frees the handle under a call running on another thread, and never waits
/// for one: libvirt closes the connection for real when the last call in flight returns. After
/// ``close()`` every method fails at once with a transient ``VirtError`` (code
/// ``VirtError/Code/invalidConnection``) without touching the handle.
///
/// - Important: Every method makes a blocking call (an RPC for remote drivers). Callers in async
///   code run them off the cooperative thread pool.
public final class Connection: @unchecked Sendable {
    private let handle: OpaquePointer
    /// The URI the connection was opened with.
    public let uri: String
    /// Whether the connection was opened read-only.
    public let isReadOnly: Bool

    struct CloseState {
        var closed = false
        /// Why libvirt reported the connection closed (the daemon went away), if it did.
        var lostReason: CloseReason?
        var nextSubscriber: UInt64 = 0
        var subscribers: [UInt64: @Sendable (CloseReason) -> Void] = [:]
        var closeCallbackRegistered = false
    }
    /// Never held across a libvirt call that can block: only `virConnectRef` (an atomic
    /// increment) runs under it. The close callback takes it on the event-loop thread.
    let closeState = Mutex(CloseState())
    /// One libvirt call at a time on this connection (RPCs, event registrations, domain calls).
    /// ``close()`` does not take it, so it never waits for a call in flight.
    let gate = CallGate()

    private init(handle: OpaquePointer, uri: String, readOnly: Bool) {
        self.handle = handle
        self.uri = uri
        self.isReadOnly = readOnly
    }

    /// Opens a connection to the driver named by `uri`.
    ///
    /// Starts ``LibvirtEventLoop`` first (events need it, and it must be registered before the
    /// first connection), then enables keepalive on remote connections so that a dead daemon is
    /// noticed and reported through ``Connection/events(_:)`` as a close.
    /// The corresponding C functions are `virConnectOpen` and `virConnectOpenReadOnly`.
    /// - Parameters:
    ///   - uri: a libvirt URI, e.g. `qemu:///system` or `qemu:///system?socket=/run/x/libvirt-sock`.
    ///   - readOnly: open a read-only connection (enough for listing and events).
    /// - Throws: ``VirtError`` when the driver is unknown or the daemon cannot be reached.
    public static func open(_ uri: String, readOnly: Bool = false) throws(VirtError) -> Connection {
        try LibvirtEventLoop.start()
        let handle = try LibvirtCall.pointer(readOnly ? "virConnectOpenReadOnly" : "virConnectOpen") {
            readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri)
        }
        let connection = Connection(handle: handle, uri: uri, readOnly: readOnly)
        // 5 s interval, 3 missed answers: a vanished daemon is noticed within ~20 s at worst.
        // Drivers without keepalive (test://, local embedded) answer with an error: ignore it.
        if virConnectSetKeepAlive(handle, 5, 3) < 0 { virResetLastError() }
        connection.registerCloseCallback()
        return connection
    }

    deinit {
        close()
    }

    /// Closes the connection. Safe to call more than once, from any thread, while other threads
    /// are in calls on it.
    ///
    /// Deregisters the close callback first (else libvirt never frees its context), then drops
    /// this object's reference with `virConnectClose`. Calls still in flight on other threads
    /// hold their own references; the last of them to return closes the connection for real.
    /// Nothing here waits for an RPC. Event streams of this connection finish.
    public func close() {
        let (wasClosed, subscribers, hadCallback) = closeState.withLock { state in
            defer {
                state.closed = true
                state.subscribers = [:]
                state.closeCallbackRegistered = false
            }
            return (state.closed, Array(state.subscribers.values), state.closeCallbackRegistered)
        }
        guard !wasClosed else { return }
        if hadCallback {
            // No RPC: it waits at most for a close callback running on the event-loop thread,
            // which only copies values and yields (see connectionDidClose).
            if virConnectUnregisterCloseCallback(handle, connectionClosedCallback) < 0 { virResetLastError() }
        }
        virConnectClose(handle)
        for subscriber in subscribers { subscriber(.client) }
    }

    /// Runs `body` with the handle, one call at a time (``gate``), holding a libvirt reference on
    /// it for the call; fails with ``VirtError/Code/invalidConnection`` once ``close()`` has run,
    /// without touching the handle.
    ///
    /// libvirt's API calls do not reference the connection themselves: without this, a
    /// ``close()`` on another thread could free it under a call in flight. Seen here (issue 6):
    /// calls then never returned, stuck in `virNetClientSendWithReply` (`virCondWait`).
    /// The corresponding C functions are `virConnectRef` and `virConnectClose`.
    func withHandle<T>(_ operation: String, _ body: (OpaquePointer) throws(VirtError) -> T) throws(VirtError) -> T {
        // The gate first: a call that waited for it while close() ran must not go ahead.
        try gate.run { () throws(VirtError) -> T in
            let open = closeState.withLock { state in
                guard !state.closed else { return false }
                virConnectRef(handle) // an atomic increment; never blocks
                return true
            }
            guard open else {
                throw VirtError(
                    code: .invalidConnection, message: "the connection to \(uri) is closed", operation: operation)
            }
            defer { virConnectClose(handle) } // drops the call's reference; the last one closes
            return try body(handle)
        }
    }

    /// Runs `body` with the handle unless the connection is closed (see ``withHandle(_:_:)``).
    ///
    /// For work started outside the caller's control (a finished event stream deregistering on
    /// another thread), which could otherwise race with ``close()`` and use a freed handle.
    /// ``close()`` does not wait for it.
    func ifOpen(_ body: (OpaquePointer) -> Void) {
        try? withHandle("deregister") { handle in body(handle) }
    }

    /// True when the connection is open and the daemon answers.
    ///
    /// The corresponding C function is `virConnectIsAlive`.
    public var isAlive: Bool {
        (try? withHandle("virConnectIsAlive") { handle in virConnectIsAlive(handle) == 1 }) ?? false
    }

    /// The hostname of the machine the driver runs on.
    ///
    /// The corresponding C function is `virConnectGetHostname`.
    public func hostname() throws(VirtError) -> String {
        try withHandle("virConnectGetHostname") { handle throws(VirtError) in
            try LibvirtCall.string("virConnectGetHostname") { virConnectGetHostname(handle) }
        }
    }

    /// The libvirt library version of the daemon, e.g. `9000000` for 9.0.0.
    ///
    /// The corresponding C function is `virConnectGetLibVersion`.
    public func libvirtVersion() throws(VirtError) -> UInt64 {
        try withHandle("virConnectGetLibVersion") { handle throws(VirtError) in
            var version: UInt = 0
            try LibvirtCall.int("virConnectGetLibVersion") { virConnectGetLibVersion(handle, &version) }
            return UInt64(version)
        }
    }

    // MARK: - Domains

    /// Every domain the driver knows, running or defined.
    ///
    /// The corresponding C function is `virConnectListAllDomains`.
    /// - Parameter filter: which domains to list; default all.
    public func listDomains(_ filter: DomainListFilter = []) throws(VirtError) -> [Domain] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = try withHandle("virConnectListAllDomains") { handle throws(VirtError) in
            try LibvirtCall.int("virConnectListAllDomains") { virConnectListAllDomains(handle, &list, filter.rawValue) }
        }
        guard let list else { return [] }
        defer { free(list) }
        var domains: [Domain] = []
        domains.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            if let raw = list[index] { domains.append(Domain(adopting: raw, connection: self)) }
        }
        return domains
    }

    /// The domain with this name.
    ///
    /// The corresponding C function is `virDomainLookupByName`.
    /// - Throws: ``VirtError`` with code ``VirtError/Code/noDomain`` when there is none.
    public func domain(named name: String) throws(VirtError) -> Domain {
        let operation = "virDomainLookupByName(\(name))"
        let raw = try withHandle(operation) { handle throws(VirtError) in
            try LibvirtCall.pointer(operation) { virDomainLookupByName(handle, name) }
        }
        return Domain(adopting: raw, connection: self)
    }

    /// The domain with this UUID (canonical string form).
    ///
    /// The corresponding C function is `virDomainLookupByUUIDString`.
    /// - Throws: ``VirtError`` with code ``VirtError/Code/noDomain`` when there is none.
    public func domain(uuid: String) throws(VirtError) -> Domain {
        let operation = "virDomainLookupByUUIDString(\(uuid))"
        let raw = try withHandle(operation) { handle throws(VirtError) in
            try LibvirtCall.pointer(operation) { virDomainLookupByUUIDString(handle, uuid) }
        }
        return Domain(adopting: raw, connection: self)
    }

    /// Defines (but does not start) a persistent domain from its XML.
    ///
    /// The corresponding C function is `virDomainDefineXML`.
    public func defineDomain(xml: String) throws(VirtError) -> Domain {
        let raw = try withHandle("virDomainDefineXML") { handle throws(VirtError) in
            try LibvirtCall.pointer("virDomainDefineXML") { virDomainDefineXML(handle, xml) }
        }
        return Domain(adopting: raw, connection: self)
    }

    /// Creates and starts a transient domain from its XML.
    ///
    /// The corresponding C function is `virDomainCreateXML`.
    /// - Parameter startPaused: start with the vCPUs paused.
    public func createDomain(xml: String, startPaused: Bool = false) throws(VirtError) -> Domain {
        let flags = startPaused ? UInt32(VIR_DOMAIN_START_PAUSED.rawValue) : 0
        let raw = try withHandle("virDomainCreateXML") { handle throws(VirtError) in
            try LibvirtCall.pointer("virDomainCreateXML") { virDomainCreateXML(handle, xml, flags) }
        }
        return Domain(adopting: raw, connection: self)
    }
}

/// Which domains ``Connection/listDomains(_:)`` returns. Empty means all.
public struct DomainListFilter: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Running or paused domains.
    public static let active = DomainListFilter(rawValue: UInt32(VIR_CONNECT_LIST_DOMAINS_ACTIVE.rawValue))
    /// Defined but not running.
    public static let inactive = DomainListFilter(rawValue: UInt32(VIR_CONNECT_LIST_DOMAINS_INACTIVE.rawValue))
    /// Domains with a persistent definition.
    public static let persistent = DomainListFilter(rawValue: UInt32(VIR_CONNECT_LIST_DOMAINS_PERSISTENT.rawValue))
    /// Domains without one.
    public static let transient = DomainListFilter(rawValue: UInt32(VIR_CONNECT_LIST_DOMAINS_TRANSIENT.rawValue))
}

/// Why a connection closed.
public enum CloseReason: Int32, Sendable, Hashable {
    /// An I/O error on the connection.
    case error = 0
    /// The daemon closed the socket (it stopped or restarted).
    case endOfFile = 1
    /// The daemon stopped answering keepalives.
    case keepalive = 2
    /// This process closed it.
    case client = 3
}

// MARK: - Close notifications

extension Connection {
    fileprivate func registerCloseCallback() {
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        // The opaque pointer is unretained: the callback is deregistered in close(), which runs
        // at the latest in deinit, so it never outlives the connection.
        let rc = virConnectRegisterCloseCallback(handle, connectionClosedCallback, opaque, nil)
        if rc < 0 {
            virResetLastError() // Not every driver supports it (test:// does not need it).
        } else {
            closeState.withLock { $0.closeCallbackRegistered = true }
        }
    }

    /// Adds a function called (on the event-loop thread) when the connection closes.
    ///
    /// When the connection is already closed, by ``close()`` or because libvirt reported it lost,
    /// nothing is added and the reason is returned instead: a subscriber arriving just after the
    /// daemon went away must still hear of it (libvirt reports a close only once).
    /// - Returns: a token for ``removeCloseSubscriber(_:)``, or why the connection is closed.
    func addCloseSubscriber(
        _ subscriber: @escaping @Sendable (CloseReason) -> Void
    ) -> (token: UInt64?, alreadyClosed: CloseReason?) {
        closeState.withLock { state in
            if state.closed { return (nil, .client) }
            if let lost = state.lostReason { return (nil, lost) }
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = subscriber
            return (state.nextSubscriber, nil)
        }
    }

    func removeCloseSubscriber(_ token: UInt64) {
        closeState.withLock { _ = $0.subscribers.removeValue(forKey: token) }
    }

    fileprivate func connectionDidClose(reason: Int32) {
        let reason = CloseReason(rawValue: reason) ?? .error
        let subscribers = closeState.withLock { state in
            defer {
                state.subscribers = [:]
                state.lostReason = reason
            }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber(reason) }
    }
}

private func connectionClosedCallback(_ conn: virConnectPtr?, _ reason: Int32, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    Unmanaged<Connection>.fromOpaque(opaque).takeUnretainedValue().connectionDidClose(reason: reason)
}

// MARK: - One call at a time

/// Lets one libvirt call at a time through; the others wait, in arrival order of the lock.
///
/// A pthread mutex (``PthreadLock``) rather than `Synchronization.Mutex`, whose `withLock` wants a
/// `sending` result that a generic libvirt call's result is not.
final class CallGate: Sendable {
    private let lock = PthreadLock(())

    /// Runs `body` while no other call of this gate runs.
    func run<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock { (_: inout Void) throws(E) -> T in try body() }
    }
}
