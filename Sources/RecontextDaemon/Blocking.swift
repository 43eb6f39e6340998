import Threads

/// Runs blocking C work (ISO writing, fsync, lock files, connecting to libvirt) off Swift's
/// cooperative thread pool, on ``BlockingExecutor/shared``: at most
/// ``BlockingExecutor/sharedThreads`` threads, the rest queued in order.
///
/// libvirt calls on an open connection do not come here: each connection has a serial executor
/// of its own (``LibvirtHypervisor``), so calls stuck on a libvirtd that stopped answering (up to
/// the keepalive timeout, about 20 s) queue there and never hold back image builds or the
/// reconnect.
enum Blocking {
    /// Runs `body` on the shared executor and returns its result.
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        try await BlockingExecutor.shared.run(body)
    }
}

/// A bounded set of threads for blocking work, fed in FIFO order.
///
/// Threads start on demand up to `maximumThreads` and then stay for the executor's lifetime;
/// ``shutdown()`` lets them finish the queued work and end. With one thread it is a serial
/// executor: jobs run one at a time, in submission order.
///
/// Not a concurrent `DispatchQueue`: on Linux, libdispatch cannot see a worker blocked in a
/// system call and runs at most one work item per core on such a queue (2 on a 2-core host).
///
/// `@unchecked Sendable`: every stored `var` is read and written only while holding `condition`.
final class BlockingExecutor: @unchecked Sendable {
    /// Threads of ``shared``: enough for the default pipeline concurrency's image builds plus
    /// the reconnect, few enough that a storm cannot start a thread per call.
    static let sharedThreads = 8
    /// The executor behind ``Blocking/run(_:)``.
    static let shared = BlockingExecutor(name: "recontextd-blocking", maximumThreads: sharedThreads)

    private let condition = ThreadCondition()
    private var jobs: [(@Sendable () -> Void)?] = []
    private var next = 0
    private var threads = 0
    private var idle = 0
    private var stopped = false
    /// The threads' name.
    let name: String
    /// The bound on threads.
    let maximumThreads: Int

    /// Creates an executor; no thread starts before the first job.
    init(name: String, maximumThreads: Int) {
        precondition(maximumThreads > 0, "an executor needs a thread")
        self.name = name
        self.maximumThreads = maximumThreads
    }

    /// Queues `job`. After ``shutdown()`` it runs on a thread of its own (nothing is dropped).
    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            DetachedThread.start(name: name) { job() }
            return
        }
        jobs.append(job)
        // A new thread when the queued jobs outnumber the idle threads.
        let start = jobs.count - next > idle && threads < maximumThreads
        if start { threads += 1 }
        condition.signal()
        condition.unlock()
        if start {
            DetachedThread.start(name: name) { [self] in work() }
        }
    }

    /// Runs `body` on one of the executor's threads and returns its result.
    func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: Result { () throws(E) -> T in try body() }) }
        }
        return try result.get()
    }

    /// Lets the threads finish the queued jobs, then end. Idempotent; does not wait.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// How many threads run now (for tests).
    var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }

    private func work() {
        condition.lock()
        while true {
            if next < jobs.count {
                do {
                    // Moved out of the queue under the lock and released after it, outside: a job's
                    // captures can run a deinit that submits again (which takes the lock).
                    let job = jobs[next]
                    jobs[next] = nil
                    next += 1
                    if next > 64 && next * 2 > jobs.count {
                        jobs.removeFirst(next)
                        next = 0
                    }
                    condition.unlock()
                    job?()
                }
                condition.lock()
            } else if stopped {
                threads -= 1
                condition.unlock()
                return
            } else {
                idle += 1
                condition.wait()
                idle -= 1
            }
        }
    }
}
