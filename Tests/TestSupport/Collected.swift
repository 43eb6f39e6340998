import Synchronization

/// Values collected from concurrent code (a `Mutex` cannot be captured by an escaping closure).
public final class Collected<Element: Sendable>: Sendable {
    private let values = Mutex<[Element]>([])
    /// Creates an empty collection.
    public init() {}
    /// Adds a value.
    public func append(_ value: Element) { values.withLock { $0.append(value) } }
    /// Every value, in order.
    public var all: [Element] { values.withLock { $0 } }
    /// How many values.
    public var count: Int { values.withLock { $0.count } }
}
