#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - DetachedThread

/// Starts a named, detached POSIX thread: what Foundation's `Thread { … }.start()` did, without
/// Foundation (which the daemon does not link: it costs ~9 MiB of resident memory).
public enum DetachedThread {
    /// Starts `body` on a new detached thread.
    /// - Parameters:
    ///   - name: The thread's name as `ps -L`, `top -H` and gdb show it; cut to the 15 bytes the
    ///     kernel keeps.
    ///   - body: The work; the thread ends when it returns.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let job = Unmanaged.passRetained(Job(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, detachedThreadEntry, job)
        pthread_attr_destroy(&attributes)
        precondition(status == 0, "pthread_create failed: \(status)")
    }

    /// `pthread_setname_np`, looked up once: glibc declares it only under `_GNU_SOURCE`, which
    /// Swift's Glibc module is not built with. `nil` where the C library lacks it (the name is
    /// then the process's, as before the first call).
    private static let setNameFunction: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pthread_setname_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32).self)
    }()

    /// Names the calling thread (the kernel keeps 15 bytes; a longer name is cut).
    fileprivate static func setName(_ name: String) {
        guard let setNameFunction else { return }
        let bytes = Array(name.utf8.prefix(15)).map { CChar(bitPattern: $0) } + [0]
        _ = setNameFunction(pthread_self(), bytes)
    }

    /// What the new thread runs, passed through `pthread_create`'s one pointer.
    fileprivate final class Job {
        let name: String
        let body: @Sendable () -> Void

        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}

/// The thread's start routine: takes back the job `start` retained, names the thread, runs it.
private func detachedThreadEntry(_ opaque: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let opaque else { return nil }
    let job = Unmanaged<DetachedThread.Job>.fromOpaque(opaque).takeRetainedValue()
    DetachedThread.setName(job.name)
    job.body()
    return nil
}
