import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Core dumps of the processes a test starts (libvirtd, virtlogd, recontextd), and their backtraces.
///
/// ``enable()`` (called by ``LibvirtTestHost`` and ``RecontextdProcess`` before they start
/// anything) raises this process's `RLIMIT_CORE` to unlimited, which every child inherits, and,
/// as root, points the kernel's `core_pattern` at ``directory`` with the dumping process's global
/// PID, signal and time in the file name (`core.PID.SIGNAL.TIME`). ``crash(of:binary:since:)`` then
/// finds the core of a PID this test started and reads every thread's stack with
/// `gdb -batch -ex 'thread apply all bt' BINARY CORE`.
///
/// `core_pattern` is one setting for the whole machine, so concurrent test processes share it:
/// each registers its PID under `directory/users/` (under an `flock`), the first one saves the
/// pattern it found, and the last one to exit (`atexit`) puts it back. Users that died without
/// restoring are pruned by PID. The cores stay in ``directory`` for inspection.
public enum CoreDumps {
    /// Where the kernel writes the cores while a test process has them enabled.
    public static let directory = "/var/tmp/recontextd-cores"
    /// The `core_pattern` set: global PID (`%P`, the PID a test sees), signal, time.
    static let pattern = directory + "/core.%P.%s.%t"
    private static let corePatternFile = "/proc/sys/kernel/core_pattern"

    /// A process that dumped core.
    public struct Crash: Sendable, CustomStringConvertible {
        /// Which program, e.g. `libvirtd`.
        public var program: String
        /// Its PID as seen from the test.
        public var pid: Int32
        /// The signal, e.g. 11.
        public var signal: Int32
        /// The core file.
        public var core: String
        /// `thread apply all bt` of the core, or why gdb could not give it.
        public var backtrace: String

        /// "libvirtd crashed with SIGSEGV (pid N, core PATH)", then the backtrace.
        public var description: String {
            "\(program) crashed with \(CoreDumps.signalName(signal)) (pid \(pid), core \(core))\n\(backtrace)"
        }
    }

    /// Enables core dumps for every process this test process starts from now on. Idempotent.
    ///
    /// Without root only the resource limit is raised (the pattern stays the machine's).
    public static func enable() { _ = enabled }

    private static let enabled: Bool = {
        var unlimited = rlimit(rlim_cur: rlim_t.max, rlim_max: rlim_t.max) // RLIM_INFINITY
        if setrlimit(Int32(RLIMIT_CORE.rawValue), &unlimited) != 0 {
            var current = rlimit()
            getrlimit(Int32(RLIMIT_CORE.rawValue), &current)
            current.rlim_cur = current.rlim_max
            setrlimit(Int32(RLIMIT_CORE.rawValue), &current)
        }
        guard geteuid() == 0 else { return false }
        let registered = withRegistry { users in
            let current = (try? String(contentsOfFile: corePatternFile, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if let current, current != pattern {
                try? current.write(toFile: directory + "/original-core-pattern", atomically: true, encoding: .utf8)
                guard writeCorePattern(pattern) else { return false }
            }
            _ = FileManager.default.createFile(atPath: "\(directory)/users/\(getpid())", contents: nil)
            return true
        }
        if registered { atexit { CoreDumps.restore() } }
        return registered
    }()

    /// Unregisters this process; the last user puts the original `core_pattern` back.
    static func restore() {
        _ = withRegistry { users in
            try? FileManager.default.removeItem(atPath: "\(directory)/users/\(getpid())")
            guard users.allSatisfy({ $0 == getpid() }) else { return true }
            let saved = directory + "/original-core-pattern"
            let original = (try? String(contentsOfFile: saved, encoding: .utf8)) ?? "core"
            _ = writeCorePattern(original)
            try? FileManager.default.removeItem(atPath: saved)
            return true
        }
    }

    /// Runs `body` under an exclusive lock on the registry, with the PIDs of live users.
    private static func withRegistry(_ body: ([Int32]) -> Bool) -> Bool {
        let fileManager = FileManager.default
        try? fileManager.createDirectory(atPath: directory + "/users", withIntermediateDirectories: true)
        let fd = open(directory + "/.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { return false }
        var live: [Int32] = []
        for entry in (try? fileManager.contentsOfDirectory(atPath: directory + "/users")) ?? [] {
            guard let pid = Int32(entry) else { continue }
            if kill(pid, 0) == 0 || errno == EPERM {
                live.append(pid)
            } else {
                try? fileManager.removeItem(atPath: "\(directory)/users/\(entry)")
            }
        }
        return body(live)
    }

    private static func writeCorePattern(_ value: String) -> Bool {
        let fd = open(corePatternFile, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        return write(fd, bytes, bytes.count) == bytes.count
    }

    // MARK: - Finding a crash

    /// The crash of `pid` (a process started at or after `since`), with its backtrace, if it
    /// dumped core.
    /// - Parameters:
    ///   - program: the name used in the report, e.g. `libvirtd`.
    ///   - binary: the executable gdb reads the symbols from.
    public static func crash(of pid: Int32, program: String, binary: String, since: Date) -> Crash? {
        let prefix = "core.\(pid)."
        let oldest = Int(since.timeIntervalSince1970) - 1
        let candidates = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(prefix) }
            .compactMap { name -> (name: String, signal: Int32, time: Int)? in
                let parts = name.split(separator: ".")
                guard parts.count == 4, let signal = Int32(parts[2]), let time = Int(parts[3]), time >= oldest else {
                    return nil
                }
                return (name, signal, time)
            }
        guard let newest = candidates.max(by: { $0.time < $1.time }) else { return nil }
        let core = directory + "/" + newest.name
        return Crash(
            program: program, pid: pid, signal: newest.signal, core: core,
            backtrace: backtrace(binary: binary, core: core))
    }

    /// `gdb -batch -ex 'thread apply all bt' BINARY CORE`, trimmed to gdb's frames.
    public static func backtrace(binary: String, core: String) -> String {
        guard
            let result = try? ProcessRunner.runAllowingFailure(
                "/usr/bin/gdb",
                ["-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt", binary, core])
        else { return "(gdb could not be run)" }
        let lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.hasPrefix("#") || $0.hasPrefix("Thread ") || $0.hasPrefix("Program terminated") }
        let text = lines.isEmpty ? result.standardOutput + result.standardError : lines.joined(separator: "\n")
        return String(text.prefix(60_000))
    }

    /// `SIGSEGV` for 11, and so on; `signal N` for the rest.
    public static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGFPE: "SIGFPE", SIGQUIT: "SIGQUIT", SIGSYS: "SIGSYS", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM",
            SIGPIPE: "SIGPIPE", SIGINT: "SIGINT", SIGHUP: "SIGHUP",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}
