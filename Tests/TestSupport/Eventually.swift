import Foundation

// MARK: - The poll helper

/// Waits until `condition` holds, checking every `interval`, for at most `timeout`.
///
/// The one poll helper of the tests: for state that has no event to wait on (a file, another
/// process, libvirt's view of a domain). Prefer a wait on the condition itself where the code
/// offers one (a ``Gate``, a continuation, a process's exit: `Process.exited(within:)`).
/// - Parameters:
///   - timeout: how long to keep looking.
///   - interval: the pause between two looks (a look that runs a program wants a longer one).
///   - condition: what is awaited; it runs at least once, and once more at the deadline.
/// - Returns: whether the condition held before the timeout.
@discardableResult
public func eventually(
    timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    try await eventuallyValue(timeout: timeout, every: interval) { try await condition() ? true : nil } != nil
}

/// Waits until `value` gives a value, looking every `interval`, for at most `timeout`.
///
/// The form of ``eventually(timeout:every:_:)`` that returns what was awaited (an image path, a
/// log line).
/// - Returns: the first value, or `nil` when there was none before the timeout.
public func eventuallyValue<T>(
    timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    _ value: () async throws -> T?
) async rethrows -> T? {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if let found = try await value() { return found }
        // The pause between two looks (there is nothing to wait on); a cancelled task looks once more.
        do { try await Task.sleep(for: min(interval, deadline - clock.now)) } catch { break }
    }
    return try await value()
}

/// Waits until `condition` holds, or throws ``WaitTimedOut`` naming `what` was awaited.
///
/// - Parameters:
///   - what: what is awaited, for the error (e.g. "the image of vm1 on host B").
///   - timeout: how long to keep looking.
///   - interval: the pause between two looks.
/// - Throws: ``WaitTimedOut`` after `timeout`; whatever `condition` throws.
public func eventually(
    _ what: String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async throws {
    guard try await eventually(timeout: timeout, every: interval, condition) else {
        throw WaitTimedOut(what: what, timeout: timeout)
    }
}

/// Waits until `value` gives a value and returns it, or throws ``WaitTimedOut`` naming `what`.
///
/// - Throws: ``WaitTimedOut`` after `timeout`; whatever `value` throws.
public func eventuallyValue<T>(
    _ what: String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    _ value: () async throws -> T?
) async throws -> T {
    guard let found = try await eventuallyValue(timeout: timeout, every: interval, value) else {
        throw WaitTimedOut(what: what, timeout: timeout)
    }
    return found
}

/// The blocking form of ``eventuallyValue(timeout:every:_:)``, for code that runs off the
/// cooperative pool (an initialiser that starts a process, a harness thread).
public func eventuallyValueBlocking<T>(
    timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10), _ value: () throws -> T?
) rethrows -> T? {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if let found = try value() { return found }
        // The pause between two looks (there is nothing to wait on).
        Thread.sleep(forTimeInterval: min(interval, deadline - clock.now) / .seconds(1))
    }
    return try value()
}

/// A wait that ended without what it waited for.
public struct WaitTimedOut: Error, CustomStringConvertible, Sendable {
    /// What was awaited.
    public var what: String
    /// How long it was awaited.
    public var timeout: Duration

    /// The error for `what`, awaited for `timeout`.
    public init(what: String, timeout: Duration) {
        self.what = what
        self.timeout = timeout
    }

    public var description: String { "timed out after \(timeout) waiting for \(what)" }
}
