import Foundation
import Synchronization

// MARK: - NotifySocketListener

/// A test's `NOTIFY_SOCKET`: a unix datagram socket that records every `sd_notify` message with
/// the time it arrived, as systemd's manager would receive them.
///
/// Pass ``path`` as `NOTIFY_SOCKET` to the program. A thread reads the socket until ``close()``.
public final class NotifySocketListener: @unchecked Sendable {
    // @unchecked Sendable: `descriptor` and `path` are set in init; messages are behind a Mutex.
    /// The socket's path.
    public let path: String
    private let descriptor: Int32
    private let state = State()
    private let done = DispatchSemaphore(value: 0)

    /// What the reader thread and the test share.
    final class State: Sendable {
        let messages = Mutex<[Message]>([])
        let closed = Mutex(false)
    }

    /// One datagram.
    public struct Message: Sendable, Hashable {
        /// Its text (newline-separated `KEY=value` assignments).
        public var text: String
        /// When it arrived.
        public var time: ContinuousClock.Instant
        /// The assignments.
        public var assignments: [String: String] {
            var result: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
            }
            return result
        }
    }

    /// Creates and binds the socket in a new temporary directory.
    public init() throws {
        let directory = NSTemporaryDirectory() + "recontextd-notify-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/notify.sock"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [descriptor, state, done] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    let message = Message(text: String(decoding: buffer[0..<count], as: UTF8.self), time: .now)
                    state.messages.withLock { $0.append(message) }
                } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    if state.closed.withLock({ $0 }) { break }
                    continue
                } else {
                    break
                }
            }
            done.signal()
        }
        thread.start()
    }

    deinit {
        close()
    }

    /// Stops reading and removes the socket.
    public func close() {
        let wasClosed = state.closed.withLock { value in
            defer { value = true }
            return value
        }
        guard !wasClosed else { return }
        done.wait()
        Glibc.close(descriptor)
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }

    /// Every message so far.
    public var messages: [Message] { state.messages.withLock { $0 } }

    /// Waits until a message satisfies `predicate` (after the first `skip` messages); returns it.
    public func waitFor(
        after skip: Int = 0, timeout: Duration = .seconds(30), _ predicate: (Message) -> Bool
    ) async -> (index: Int, message: Message)? {
        await eventuallyValue(timeout: timeout) { () -> (index: Int, message: Message)? in
            let all = messages
            guard skip < all.count, let index = all[skip...].firstIndex(where: predicate) else { return nil }
            return (index, all[index])
        }
    }
}
