import Foundation

// MARK: - JournaldInstance

/// A real `systemd-journald`, started by a test in private namespaces so that it never touches
/// the machine's journal, audit settings or `/run`.
///
/// A supervisor shell runs in its own mount and network namespaces (`unshare --mount --net`):
/// it mounts a tmpfs over `/run` (so `/run/systemd/journal/socket` is private), binds
/// ``journalDirectory`` to `/run/log/journal` (so the test reads the files with
/// `journalctl --directory`), writes a journald.conf drop-in (volatile storage, no kmsg, no
/// forwarding), starts `/lib/systemd/systemd-journald` and then waits on its standard input. The
/// network namespace keeps journald away from the kernel's audit socket. Programs that log to
/// it are started inside the same mount namespace with `nsenter --mount` (``start(_:environment:streamIdentifier:)``).
///
/// The supervisor stops journald when its standard input closes: in ``stop()``, or when the test
/// process exits or crashes.
public final class JournaldInstance: @unchecked Sendable {
    // @unchecked Sendable: every stored property is set in init; Process is only signalled by PID.
    private let supervisor: Process
    private let input: Pipe
    /// The instance's scratch directory (removed by ``stop()``).
    public let root: String
    /// Where journald writes its files (`/run/log/journal` inside), for `journalctl --directory`.
    public let journalDirectory: String

    /// Programs the instance needs.
    public static let programs = [
        "/lib/systemd/systemd-journald", "/usr/bin/journalctl", "/usr/bin/unshare", "/usr/bin/nsenter",
        "/usr/bin/systemd-cat",
    ]

    /// Why a journald cannot be started here, or `nil`.
    public static var skipReason: String? {
        guard getuid() == 0 else { return "needs root (a private mount namespace for journald's /run)" }
        for program in programs where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing (Debian package systemd / util-linux)"
        }
        return nil
    }

    /// Whether a journald can be started here.
    public static var isAvailable: Bool { skipReason == nil }

    private static let script = #"""
        set -eu
        root=$1
        mount -t tmpfs -o mode=0755,size=16m recontextd-test-run /run
        mkdir -p /run/systemd/journal /run/systemd/journald.conf.d /run/log/journal
        mount --bind "$root/journal" /run/log/journal
        cat > /run/systemd/journald.conf.d/zz-recontextd-tests.conf <<'EOF'
        [Journal]
        Storage=volatile
        ReadKMsg=no
        ForwardToSyslog=no
        ForwardToKMsg=no
        ForwardToConsole=no
        ForwardToWall=no
        RateLimitIntervalSec=0
        RuntimeMaxUse=64M
        EOF
        /lib/systemd/systemd-journald </dev/null >"$root/journald.log" 2>&1 &
        journald=$!
        echo "$journald" > "$root/journald.pid"
        # journald tells only systemd that it is ready: look for its socket (10 s at most).
        n=0
        while [ ! -S /run/systemd/journal/socket ] && [ "$n" -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
        if [ -S /run/systemd/journal/socket ]; then echo ready; else echo failed; fi
        cat > /dev/null || true
        kill "$journald" 2>/dev/null || true
        wait "$journald" 2>/dev/null || true
        """#

    /// Starts journald and returns once its socket exists (blocks up to 10 s).
    /// - Throws: when journald does not come up (its log is in the error).
    public init() throws {
        root = NSTemporaryDirectory() + "recontextd-journald-" + UUID().uuidString.prefix(8).lowercased()
        journalDirectory = root + "/journal"
        try FileManager.default.createDirectory(atPath: journalDirectory, withIntermediateDirectories: true)
        supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        supervisor.arguments = [
            "--mount", "--net", "--propagation", "private", "--", "/bin/sh", "-c", Self.script, "sh", root,
        ]
        input = Pipe()
        let output = Pipe()
        supervisor.standardInput = input
        supervisor.standardOutput = output
        supervisor.standardError = FileHandle.nullDevice
        try supervisor.run()
        // The supervisor prints "ready" or "failed" once it knows (or ends: end of file).
        let reader = LineReader(output.fileHandleForReading)
        let state = reader.readLine()
        reader.close()
        if state == "ready" { return }
        let log = (try? String(contentsOfFile: root + "/journald.log", encoding: .utf8)) ?? ""
        stop()
        throw ProcessRunner.Failure(
            command: "systemd-journald (private namespaces)", status: -1, standardError: log, standardOutput: "")
    }

    /// Starts journald off the cooperative thread pool (``init()`` blocks while it comes up).
    public static func start() async throws -> JournaldInstance {
        try await offload { try JournaldInstance() }
    }

    deinit {
        stop()
    }

    /// The supervisor's PID: its mount namespace is the one journald's socket lives in.
    public var pid: Int32 { supervisor.processIdentifier }

    /// The command prefix that runs a program in journald's mount namespace.
    public var launcher: [String] { ["/usr/bin/nsenter", "--target", "\(pid)", "--mount", "--"] }

    /// Stops journald (closes the supervisor's input, then waits; SIGKILL after 5 s) and removes
    /// ``root``.
    public func stop() {
        try? input.fileHandleForWriting.close()
        if !supervisor.waitForExit(timeout: .seconds(5)) {
            if let text = try? String(contentsOfFile: root + "/journald.pid", encoding: .utf8),
                let journald = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                kill(journald, SIGKILL)
            }
            kill(supervisor.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: - Programs

    /// A program started in journald's mount namespace.
    public final class Program: @unchecked Sendable {
        // @unchecked Sendable: `process` is started in init and afterwards only signalled by PID.
        private let process: Process
        /// Standard output and error, collected in a file.
        public let outputPath: String

        init(_ arguments: [String], environment: [String: String], outputPath: String) throws {
            self.outputPath = outputPath
            _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
            process = Process()
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
            process.environment = RecontextdProcess.daemonEnvironment(environment)
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = output
            process.standardError = output
            try process.run()
            try? output.close()
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        /// The PID (nsenter and systemd-cat exec the program, so it is the program's).
        public var pid: Int32 { process.processIdentifier }
        /// Whether it still runs.
        public var isRunning: Bool { process.isRunning }
        /// What it printed.
        public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

        /// Sends a signal.
        public func signal(_ signal: Int32) {
            if process.isRunning { kill(process.processIdentifier, signal) }
        }

        /// SIGTERM, then waits for the exit (SIGKILL after `timeout`); returns the exit status.
        @discardableResult
        public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
            signal(SIGTERM)
            if await !process.exited(within: timeout) {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            return process.terminationStatus
        }
    }

    /// Starts `arguments` (an absolute program path first) in journald's mount namespace.
    /// - Parameters:
    ///   - environment: added to (or replacing in) this process's environment, less
    ///     `JOURNAL_STREAM` and `NOTIFY_SOCKET`.
    ///   - streamIdentifier: when given, the program runs under `systemd-cat -t IDENTIFIER`: its
    ///     standard output and error are a journal stream, and `JOURNAL_STREAM` names it (device
    ///     and inode of standard error, as systemd sets it; systemd-cat itself does not).
    public func start(_ arguments: [String], environment: [String: String] = [:], streamIdentifier: String? = nil)
        throws -> Program
    {
        var command = launcher
        if let streamIdentifier {
            command += [
                "/usr/bin/systemd-cat", "-t", streamIdentifier, "--", "/bin/sh", "-c",
                #"export JOURNAL_STREAM="$(stat -L -c %d:%i /proc/self/fd/2)"; exec "$@""#, "sh",
            ]
        }
        return try Program(
            command + arguments, environment: environment,
            outputPath: root + "/program-" + UUID().uuidString.prefix(6).lowercased() + ".log")
    }

    // MARK: - Reading

    /// Entries matching every `FIELD=value` in `matches` (`journalctl --directory … -o json`),
    /// each as its fields (first value of each; binary values decoded as UTF-8).
    public func entries(_ matches: [String]) throws -> [[String: String]] {
        let output = try ProcessRunner.run(
            "/usr/bin/journalctl", ["--directory", journalDirectory, "--no-pager", "-o", "json"] + matches)
        return output.split(separator: "\n").compactMap { line -> [String: String]? in
            guard let data = line.data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            var fields: [String: String] = [:]
            for (key, value) in object {
                if let text = value as? String {
                    fields[key] = text
                } else if let bytes = value as? [Int] {
                    fields[key] = String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
                } else if let values = value as? [Any], let first = values.first {
                    fields[key] = first as? String ?? "\(first)"
                }
            }
            return fields
        }
    }

    /// ``entries(_:)`` off the cooperative thread pool.
    public func read(_ matches: [String]) async throws -> [[String: String]] {
        try await offload { try self.entries(matches) }
    }

    /// Polls ``entries(_:)`` until at least `count` match, or the timeout passes.
    public func waitForEntries(
        _ matches: [String], count: Int = 1, timeout: Duration = .seconds(30)
    ) async throws -> [[String: String]] {
        var found: [[String: String]] = []
        try await eventually(timeout: timeout, every: .milliseconds(100)) {
            found = try await read(matches)
            return found.count >= count
        }
        return found
    }
}
