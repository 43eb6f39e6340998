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
    public static func runCommand(_ arguments: [String]) throws -> (
        status: Int32, standardOutput: String, standardError: String
    ) {
        try ProcessRunner.runAllowingFailure(binary, arguments)
    }

    /// The daemon's own PID: the process's, or, when run on a test host, the child `nsenter`
    /// forked into the host's namespaces.
    private let daemonPID: Int32
    /// When the process was started (for ``crash``).
    private let startedAt: Date

    /// Starts `recontextd ARGUMENTS` (e.g. `run --config …`).
    ///
    /// With `host`, it runs "on" that host: inside its mount, UTS and PID namespaces (through
    /// `nsenter`), where `qemu:///system` is that host's libvirtd, as a daemon installed there
    /// would. It then also dies with the host if the test process dies.
    ///
    /// The daemon starts with SIGPIPE at its default action (through `env --default-signal=PIPE`,
    /// which execs it, so the PID is the daemon's), as from a shell: `Process` passes on this test
    /// process's dispositions, and the Virt library here ignores SIGPIPE once a test has opened a
    /// connection, which would hide a daemon that dies of it (issue 6).
    ///
    /// With `unblockedSignals`, it starts with no signal blocked, as systemd starts a service
    /// (a `Process` started from an async test hands its thread's mask on, which blocks e.g. a
    /// SIGSEGV sent with kill(2); a real fault is delivered regardless).
    public init(
        _ arguments: [String], on host: LibvirtTestHost? = nil, environment: [String: String] = [:],
        unblockedSignals: Bool = false
    ) throws {
        process = Process()
        let unblock = [
            "/usr/bin/python3", "-c",
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
        ]
        let direct =
            (unblockedSignals ? unblock : []) + ["/usr/bin/env", "--default-signal=PIPE", Self.binary] + arguments
        let command = host.map { $0.onHostArguments(direct) } ?? direct
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = Self.daemonEnvironment(environment)
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
        CoreDumps.enable()
        startedAt = Date()
        try process.run()
        guard host != nil, host?.usesPIDNamespace == true else {
            daemonPID = process.processIdentifier
            return
        }
        // nsenter --pid forks: the daemon is its child (a fork has no event to wait on).
        let parent = process.processIdentifier
        let child = eventuallyValueBlocking(timeout: .seconds(1), every: .milliseconds(2)) { () -> Int32? in
            guard let text = try? String(contentsOfFile: "/proc/\(parent)/task/\(parent)/children", encoding: .utf8)
            else { return nil }
            return text.split(separator: " ").first.flatMap { Int32($0) }
        }
        daemonPID = child ?? parent
    }

    deinit {
        if process.isRunning {
            kill(daemonPID, SIGKILL)
            kill(process.processIdentifier, SIGKILL)
        }
    }

    /// The daemon's process ID, as seen from the test.
    public var pid: Int32 { daemonPID }

    /// How the process ended (`exit status N` or `killed by signal N`), or `nil` while it runs.
    public var exitDescription: String? {
        guard !process.isRunning else { return nil }
        switch process.terminationReason {
        case .exit: return "exit status \(process.terminationStatus)"
        case .uncaughtSignal: return "killed by signal \(process.terminationStatus)"
        @unknown default: return "ended (\(process.terminationStatus))"
        }
    }

    /// The daemon's crash, once it has ended by a signal that means one (SIGSEGV, SIGABRT, SIGILL,
    /// SIGTRAP, SIGBUS, SIGFPE, SIGSYS) or left a core: "recontextd crashed with SIGSEGV (pid N,
    /// core PATH)" and every thread's stack. `nil` while it runs, and after a clean exit or a
    /// signal the test sent (SIGKILL, SIGTERM). See ``CoreDumps``.
    public var crash: CoreDumps.Crash? {
        guard !process.isRunning else { return nil }
        if let crash = CoreDumps.crash(of: daemonPID, program: "recontextd", binary: Self.binary, since: startedAt) {
            return crash
        }
        let crashSignals: Set<Int32> = [SIGSEGV, SIGABRT, SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSYS]
        guard process.terminationReason == .uncaughtSignal, crashSignals.contains(process.terminationStatus) else {
            return nil
        }
        return CoreDumps.Crash(
            program: "recontextd", pid: daemonPID, signal: process.terminationStatus, core: "none",
            backtrace: "(no core dump in \(CoreDumps.directory); its log ends:)\n\(logText.suffix(3000))")
    }

    /// Everything logged so far.
    public var logText: String { log.text.withLock { $0 } }

    /// Waits until a log line contains `fragment` (and returns true), or the timeout passes.
    @discardableResult
    public func waitForLog(_ fragment: String, count: Int = 1, timeout: Duration = .seconds(30)) async -> Bool {
        func found() -> Bool { logText.components(separatedBy: fragment).count - 1 >= count }
        // The log grows on a pipe's handler thread; an ended daemon logs nothing more.
        await eventually(timeout: timeout, every: .milliseconds(20)) { found() || !process.isRunning }
        return found()
    }

    /// Sends a signal by PID.
    public func signal(_ signal: Int32) {
        if process.isRunning { kill(daemonPID, signal) }
    }

    /// SIGTERM, then waits for the exit; SIGKILL after the timeout. Returns the exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
        signal(SIGTERM)
        if await !process.exited(within: timeout) {
            kill(daemonPID, SIGKILL)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }
}

extension RecontextdProcess {
    /// The test process's environment for a daemon it starts: without the test runner's own
    /// `JOURNAL_STREAM` and `NOTIFY_SOCKET` (the daemon would log to, or notify, the runner's
    /// supervisor), plus `extra`.
    public static func daemonEnvironment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "JOURNAL_STREAM")
        environment.removeValue(forKey: "NOTIFY_SOCKET")
        environment.merge(extra) { _, new in new }
        return environment
    }
}
