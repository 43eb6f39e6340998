import Dispatch
import RecontextConfiguration
import RecontextCore
import Threads

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - MetricsHTTPResponder

/// A tiny blocking HTTP/1.0 responder for `GET /metrics`, on a unix socket or a loopback TCP
/// address, on a thread of its own.
///
/// Prometheus (or a local proxy) scrapes every few seconds; one connection at a time, each read
/// bounded by a 2-second timeout and 8 KiB, is plenty and needs no event loop: concurrent scrapers
/// wait in the listen backlog and are answered in turn. Every answer says `Connection: close` and
/// closes (keep-alive is refused, HTTP/1.1 clients included). Anything other than `GET /metrics`
/// (or `HEAD`) gets 404 or 405; a head over 8 KiB gets 431, an incomplete one 400.
///
/// Why a responder of our own and not a server library: it is about 200 lines with no event loop;
/// an HTTP server package (SwiftNIO) would add minutes to every build and megabytes to the
/// daemon's memory for one endpoint that most hosts scrape through the textfile instead. It never binds a non-loopback address: the
/// configuration refuses those, and ``init(address:body:)`` checks again.
///
/// - Important: ``start()`` and ``stop()`` may be called from any thread; the accept loop runs
///   on its own thread and calls `body` there.
public final class MetricsHTTPResponder: @unchecked Sendable {
    // @unchecked Sendable: `listener` is set once in init; `stopped` is behind a Mutex-like
    // lock; the thread only reads immutable state.
    private let listener: Int32
    private let address: MetricsListenAddress
    private let body: @Sendable () -> String
    private let finished = DispatchSemaphore(value: 0)
    private let lock = ThreadCondition()
    private var running = false
    private var stopped = false

    /// Why the listener could not be set up.
    public struct SetupError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The failing step (`socket`, `bind`, `listen`, …).
        public var step: String
        /// The address.
        public var address: String
        /// `errno` after the failing call, or 0.
        public var errno: Int32
        /// Extra text, when `errno` says nothing.
        public var message: String?

        public var description: String {
            "\(step) \(address): \(message ?? String(cString: strerror(errno)))"
        }
    }

    /// Creates, binds and listens on the socket (the accept loop starts with ``start()``).
    /// - Parameters:
    ///   - address: a unix socket path (an old socket there is replaced; any other file is not)
    ///     or a loopback TCP address.
    ///   - body: the exposition text, produced on the responder's thread for each scrape.
    /// - Throws: ``SetupError``.
    public init(address: MetricsListenAddress, body: @escaping @Sendable () -> String) throws(SetupError) {
        self.address = address
        self.body = body
        listener = try Self.makeListener(address)
    }

    deinit {
        stop()
    }

    /// The TCP port bound (useful when the address asked for port 0), or `nil` for a unix socket.
    public var boundPort: UInt16? {
        guard case .tcp = address else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        guard result == 0 else { return nil }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    UInt16(bigEndian: $0.pointee.sin6_port)
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                UInt16(bigEndian: $0.pointee.sin_port)
            }
        }
    }

    /// Starts the accept loop on a new thread.
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        guard !running, !stopped else { return }
        running = true
        DetachedThread.start(name: "recontextd-metrics") { [self] in
            acceptLoop()
            finished.signal()
        }
    }

    /// Stops accepting, waits for the thread, closes the socket and removes a unix socket file.
    public func stop() {
        lock.lock()
        let wasRunning = running
        let alreadyStopped = stopped
        stopped = true
        lock.unlock()
        guard !alreadyStopped else { return }
        // shutdown() wakes a thread blocked in accept() on Linux.
        shutdown(listener, Int32(SHUT_RDWR))
        if wasRunning { finished.wait() }
        close(listener)
        if case .unix(let path) = address { unlink(path) }
    }

    // MARK: - Serving

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func acceptLoop() {
        while !isStopped {
            // accept4 needs _GNU_SOURCE, which Glibc's Swift module does not define.
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if isStopped { return }
                // EMFILE and the like: back off instead of spinning.
                usleep(100_000)
                continue
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            serve(connection)
            close(connection)
        }
    }

    private func serve(_ connection: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            request.append(contentsOf: chunk[0..<count])
            if Self.containsHeaderEnd(request) { break }
        }
        let (status, text, isHead) =
            Self.containsHeaderEnd(request)
            ? Self.response(to: request, body: body)
            : request.count >= 8192
                ? ("431 Request Header Fields Too Large", "request head over 8 KiB\n", false)
                : ("400 Bad Request", "incomplete request\n", false)
        var head = "HTTP/1.0 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        head += "Content-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n"
        var bytes = Array(head.utf8)
        if !isHead { bytes.append(contentsOf: text.utf8) }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    /// The status line, body and whether it is a HEAD request, for a raw request.
    static func response(to request: [UInt8], body: () -> String) -> (status: String, text: String, isHead: Bool) {
        let firstLine = String(
            decoding: request.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = firstLine.split(separator: " ")
        guard parts.count >= 2 else { return ("400 Bad Request", "bad request\n", false) }
        let method = parts[0]
        let target = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard target == "/metrics" else { return ("404 Not Found", "only /metrics is served here\n", method == "HEAD") }
        guard method == "GET" || method == "HEAD" else { return ("405 Method Not Allowed", "use GET\n", false) }
        return ("200 OK", body(), method == "HEAD")
    }

    /// Whether `bytes` contain `\r\n\r\n` or `\n\n`: the end of an HTTP request head.
    static func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        for index in 1..<bytes.count where bytes[index] == UInt8(ascii: "\n") {
            if bytes[index - 1] == UInt8(ascii: "\n") { return true }
            if index >= 3 && bytes[index - 1] == 13 && bytes[index - 2] == 10 && bytes[index - 3] == 13 { return true }
        }
        return false
    }

    // MARK: - Listener

    private static func makeListener(_ address: MetricsListenAddress) throws(SetupError) -> Int32 {
        let shown = address.description
        switch address {
        case .unix(let path):
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFSOCK else {
                    throw SetupError(
                        step: "bind", address: shown, errno: EEXIST,
                        message: "a file that is not a socket is in the way")
                }
                unlink(path)
            }
            var socketAddress = sockaddr_un()
            socketAddress.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
            }
            return try listening(family: AF_UNIX, at: socketAddress, shown: shown, reuseAddress: false) {
                chmod(path, 0o660)
            }
        case .tcp(let host, let port):
            if host.contains(":") {
                var socketAddress = sockaddr_in6()
                socketAddress.sin6_family = sa_family_t(AF_INET6)
                socketAddress.sin6_port = port.bigEndian
                guard inet_pton(AF_INET6, host, &socketAddress.sin6_addr) == 1, host == "::1" else {
                    throw SetupError(
                        step: "bind", address: shown, errno: EINVAL, message: "not the IPv6 loopback address")
                }
                return try listening(family: AF_INET6, at: socketAddress, shown: shown, reuseAddress: true)
            }
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &socketAddress.sin_addr) == 1,
                UInt32(bigEndian: socketAddress.sin_addr.s_addr) >> 24 == 127
            else {
                throw SetupError(
                    step: "bind", address: shown, errno: EINVAL, message: "not an IPv4 loopback address (127.0.0.0/8)")
            }
            return try listening(family: AF_INET, at: socketAddress, shown: shown, reuseAddress: true)
        }
    }

    /// A stream socket of `family` bound to `address` (a `sockaddr_un`, `sockaddr_in` or
    /// `sockaddr_in6`), `afterBind` run, then listening; closed again if a step fails.
    private static func listening<Address>(
        family: Int32, at address: Address, shown: String, reuseAddress: Bool, afterBind: () -> Void = {}
    ) throws(SetupError) -> Int32 {
        let descriptor = try socketDescriptor(family: family, shown: shown)
        if reuseAddress {
            var on: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<Address>.size))
            }
        }
        try check(result, "bind", shown, descriptor)
        afterBind()
        try check(listen(descriptor, 16), "listen", shown, descriptor)
        return descriptor
    }

    private static func socketDescriptor(family: Int32, shown: String) throws(SetupError) -> Int32 {
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SetupError(step: "socket", address: shown, errno: errno) }
        return descriptor
    }

    private static func check(_ result: Int32, _ step: String, _ shown: String, _ descriptor: Int32) throws(SetupError)
    {
        guard result == 0 else {
            let error = SetupError(step: step, address: shown, errno: errno)
            close(descriptor)
            throw error
        }
    }
}
