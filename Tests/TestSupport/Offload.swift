import Dispatch

/// Runs blocking work (a child process, a poll with `usleep`) on a dispatch queue instead of the
/// cooperative thread pool.
///
/// The pool has one thread per core (two on CI's machine): a test that blocks one of them for
/// seconds (`make install`, `dpkg -i`, `journalctl`) delays every other test's timers and tasks.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}
