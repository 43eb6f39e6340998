import Foundation
import Synchronization

/// A `recontextd` process started by a test (the real binary, as systemd would run it).
///
/// Its standard error (the log) is collected; ``waitForLog(_:timeout:)`` waits for a line.
/// Stopped by PID with SIGTERM in ``stop()``, and killed in `deinit` if a test forgot.
public final class RecontextdProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is only started in init and signalled by PID; the log buffer
    // is behind a Mutex.
    private let process: Process
    private let log = LogBuffer()

    final class LogBuffer: Sendable {
        let text = Mutex("")
    }

    /// The binary built by `swift build` (or `RECONTEXTD_BINARY`).
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["RECONTEXTD_BINARY"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for configuration in ["debug", "release"] {
            let path = root.appendingPathComponent(".build/\(configuration)/recontextd").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root.appendingPathComponent(".build/debug/recontextd").path
    }

    /// Runs `recontextd ARGUMENTS` once to completion (e.g. `status --json`).
    public static func runCommand(_ arguments: [String]) throws -> (status: Int32, standardOutput: String, standardError: String) {
        try ProcessRunner.runAllowingFailure(binary, arguments)
    }

    /// Starts `recontextd ARGUMENTS` (e.g. `run --config …`).
    public init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "JOURNAL_STREAM")
        env.removeValue(forKey: "NOTIFY_SOCKET")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let log = self.log
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            let chunk = String(decoding: data, as: UTF8.self)
            log.text.withLock { $0 += chunk }
        }
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// The process ID.
    public var pid: Int32 { process.processIdentifier }

    /// Everything logged so far.
    public var logText: String { log.text.withLock { $0 } }

    /// Waits until a log line contains `fragment` (and returns true), or the timeout passes.
    @discardableResult
    public func waitForLog(_ fragment: String, count: Int = 1, timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if logText.components(separatedBy: fragment).count - 1 >= count { return true }
            if !process.isRunning { return logText.components(separatedBy: fragment).count - 1 >= count }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Sends a signal by PID.
    public func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// SIGTERM, then waits for the exit; SIGKILL after the timeout. Returns the exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }
}
