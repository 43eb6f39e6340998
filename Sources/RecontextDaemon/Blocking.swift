import Dispatch

/// Runs blocking C work (libvirt RPCs, ISO writing) off Swift's cooperative thread pool.
///
/// The cooperative pool has one thread per core; a blocking libvirt call on it would stall
/// every task, event intake included. Work here runs on a concurrent dispatch queue instead; the
/// scheduler's concurrency limit bounds how many calls are in flight.
enum Blocking {
    private static let queue = DispatchQueue(label: "recontextd.blocking", attributes: .concurrent)

    /// Runs `body` on the blocking queue and returns its result.
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
        }
        return try result.get()
    }
}
