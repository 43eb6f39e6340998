import RecontextCore
import Synchronization
import Virt

/// The daemon's connections and the serial executors their calls run on (one thread each,
/// calls in order).
final class LibvirtLink: Sendable {
    /// A connection for the pipeline's calls and its executor (one thread: one call at a time).
    struct Lane: Sendable {
        let connection: Connection
        let executor: BlockingExecutor
    }

    /// The pipeline's lanes: a domain's calls always go to the same one (``lane(for:)``), so a
    /// run's calls stay in order and different domains' runs do not queue behind each other.
    let lanes: [Lane]
    /// The first lane's connection, for calls about no domain in particular (listings).
    var connection: Connection { lanes[0].connection }
    /// The first lane's executor.
    var executor: BlockingExecutor { lanes[0].executor }
    /// The connection for events (returned by ``LibvirtHypervisor/connect()``).
    let events: Connection
    /// The connection for guest channels (streams), opened on first use: a host whose domains have
    /// no ports, or a driver without channels (libvirt's test driver, where every connection holds
    /// a copy of all domains), never opens it.
    private let channels = Mutex<ChannelsState>(.notOpened)
    let uri: String
    /// The channels connection's executor.
    let channelExecutor = BlockingExecutor(name: "recontextd-channels", maximumThreads: 1)
    private let retired = Atomic(false)

    /// True once ``retire()`` ran: its connections are closed (the streams on them too).
    var isRetired: Bool { retired.load(ordering: .acquiring) }

    enum ChannelsState {
        case notOpened
        case open(Connection)
        /// The driver cannot open channels: the connection was closed again, and stays closed.
        case unsupported(String)
        case retired
    }

    init(uri: String, calls: [Connection], events: Connection) {
        precondition(!calls.isEmpty, "at least one connection for calls")
        self.uri = uri
        self.lanes = calls.map {
            Lane(connection: $0, executor: BlockingExecutor(name: "recontextd-libvirt", maximumThreads: 1))
        }
        self.events = events
    }

    /// The lane of domain `uuid` (a stable hash of the UUID).
    func lane(for uuid: String) -> Lane {
        let hash = uuid.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        return lanes[Int(hash % UInt32(lanes.count))]
    }

    /// Runs `body` with the channels connection (opened on first use) on its executor.
    func runOnChannels<T: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (Connection) throws(VirtError) -> T
    ) async throws(HypervisorError) -> T {
        do {
            return try await channelExecutor.run { () throws(VirtError) -> T in
                let connection = try self.channelsConnection(operation)
                do throws(VirtError) {
                    return try body(connection)
                } catch  where error.code == .noSupport {
                    self.channelsUnsupported(error.message)
                    throw error
                }
            }
        } catch {
            throw HypervisorError(error, operation: operation)
        }
    }

    /// The channels connection, opened now if it is not yet (on the channels executor).
    private func channelsConnection(_ operation: String) throws(VirtError) -> Connection {
        let state = channels.withLock { $0 }
        switch state {
        case .open(let connection): return connection
        case .unsupported(let message): throw VirtError(code: .noSupport, message: message, operation: operation)
        case .retired:
            throw VirtError(
                code: .invalidConnection, message: "the connection to \(uri) is closed", operation: operation)
        case .notOpened:
            let connection = try Connection.open(uri)
            let kept = channels.withLock { state -> Bool in
                guard case .notOpened = state else { return false }
                state = .open(connection)
                return true
            }
            guard kept else {
                connection.close()
                throw VirtError(
                    code: .invalidConnection, message: "the connection to \(uri) is closed", operation: operation)
            }
            return connection
        }
    }

    /// The driver has no guest channels: close the connection and remember why.
    private func channelsUnsupported(_ message: String) {
        let old = channels.withLock { state -> Connection? in
            guard case .open(let connection) = state else { return nil }
            state = .unsupported(message)
            return connection
        }
        old?.close()
    }

    /// Runs `body` with a lane's connection on its executor (domain `uuid`'s lane, or the first);
    /// maps libvirt's error to the pipeline's.
    func run<T: Sendable>(
        _ operation: String, for uuid: String? = nil, _ body: @escaping @Sendable (Connection) throws(VirtError) -> T
    ) async throws(HypervisorError) -> T {
        let lane = uuid.map { self.lane(for: $0) } ?? lanes[0]
        do {
            return try await lane.executor.run { () throws(VirtError) -> T in try body(lane.connection) }
        } catch {
            throw HypervisorError(error, operation: operation)
        }
    }

    /// Closes the connection (calls still queued then fail at once, as transient) and lets the
    /// executor's thread end. Blocking: the close may be an RPC.
    func retire() {
        retired.store(true, ordering: .releasing)
        for lane in lanes { lane.connection.close() }
        events.close()
        let channels = self.channels.withLock { state -> Connection? in
            defer { state = .retired }
            if case .open(let connection) = state { return connection }
            return nil
        }
        channels?.close()
        for lane in lanes { lane.executor.shutdown() }
        channelExecutor.shutdown()
    }
}
