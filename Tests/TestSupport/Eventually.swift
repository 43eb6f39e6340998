/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`.
///
/// The one poll helper of the tests: for state that has no event to wait on (a file, another
/// process). Prefer a wait on the condition itself where the code offers one.
/// - Returns: whether the condition held before the timeout.
@discardableResult
public func eventually(
    timeout: Duration = .seconds(60), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
