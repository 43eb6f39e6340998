import Foundation

extension Process {
    /// Waits up to `timeout` for the process to end, on its termination (no polling).
    ///
    /// Sets the process's `terminationHandler` (tests set none of their own).
    /// - Returns: whether the process has ended.
    /// - Important: Blocks the calling thread; from async code use ``exited(within:)``.
    public func waitForExit(timeout: Duration) -> Bool {
        let ended = DispatchSemaphore(value: 0)
        terminationHandler = { _ in ended.signal() }
        // Foundation clears isRunning before it calls the handler: an end that came before the
        // handler was set is seen here.
        if !isRunning { return true }
        let nanoseconds = Int(min(timeout, .seconds(86_400)) / .nanoseconds(1))
        return ended.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success || !isRunning
    }

    /// ``waitForExit(timeout:)`` off the cooperative thread pool.
    public func exited(within timeout: Duration) async -> Bool {
        // A Process is not Sendable; it is only read (and its handler set) by the waiting thread.
        let process = UncheckedProcess(process: self)
        return (try? await offload { process.process.waitForExit(timeout: timeout) }) ?? !isRunning
    }
}

/// Carries a `Process` to the thread that waits for it.
private struct UncheckedProcess: @unchecked Sendable {
    // @unchecked Sendable: Process is thread-safe for isRunning and terminationHandler, the only
    // members the waiting thread uses.
    let process: Process
}
