#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - PthreadLock

/// A lock around a value, built on `pthread_mutex_t`.
///
/// Used where thread checkers must see the lock: for the process-wide libisofs lock instead of
/// `Synchronization.Mutex`, so that checkers that understand pthread locks but not raw futexes
/// (valgrind's helgrind and DRD) can verify that libisofs is never entered by two threads at once;
/// and for the one-call-at-a-time gate of a libvirt connection.
///
/// `@unchecked Sendable`: the value is only reached inside ``withLock(_:)``, while the mutex is held,
/// and the mutex lives at a stable heap address for the lifetime of the object.
public final class PthreadLock<Value>: @unchecked Sendable {
    /// The mutex, heap-allocated so it never moves.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// The guarded value.
    private var value: Value

    /// Creates a lock guarding `value`.
    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and the guarded value passed in.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure)
        -> Result
    {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
