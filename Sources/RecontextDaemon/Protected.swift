import Synchronization

/// A value behind a lock, shareable by reference (a `Mutex` itself cannot be captured by
/// escaping closures).
final class Protected<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    /// Runs `body` with exclusive access to the value.
    func withLock<T: Sendable>(_ body: (inout sending Value) -> sending T) -> T { mutex.withLock(body) }
    /// The current value.
    var value: Value { mutex.withLock { $0 } }
}
