import Foundation

/// Runs blocking C work (libvirt RPCs, ISO writing) off Swift's cooperative thread pool.
///
/// The cooperative pool has one thread per core; a blocking libvirt call on it would stall
/// every task, event intake included. Each call here gets a thread of its own instead; the
/// scheduler's concurrency limit bounds how many pipeline calls are in flight.
///
/// Not a concurrent `DispatchQueue`: on Linux, libdispatch cannot see a worker blocked in a
/// system call and runs at most one work item per core on such a queue (2 on a 2-core host), so
/// two calls stuck on a libvirtd that stopped answering (up to the keepalive timeout, about 20 s)
/// would hold back every other call, the reconnect and event re-registration included.
enum Blocking {
    /// Runs `body` on a thread of its own and returns its result.
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
            thread.name = "recontextd-blocking"
            thread.start()
        }
        return try result.get()
    }
}
