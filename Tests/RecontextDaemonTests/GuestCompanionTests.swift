import Foundation
import TestSupport
import Testing

/// The guest companion (`guest/recontext-apply`): its own test script, `guest/tests/run.sh`, under
/// each shell a guest may have (bash, dash, busybox ash; under busybox also busybox's tools and no
/// flock). The script builds its ISO images with this build's `recontextd build-iso`.
@Suite("guest companion: recontext-apply under bash, dash and busybox")
struct GuestCompanionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let script = root + "/guest/tests/run.sh"

    /// Why `shell` cannot run the tests here, or `nil`.
    static func skipReason(_ shell: String, package: String) -> String? {
        for (program, package) in [(shell, package), ("/usr/bin/python3", "python3")]
        where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing (Debian package \(package))"
        }
        return nil
    }

    /// Starts a program with a clean signal mask and SIGPIPE at its default.
    ///
    /// Foundation's Process, started from a dispatch thread, hands the child a signal mask that
    /// blocks SIGTERM and SIGCHLD (FIELD-NOTES section 9): busybox ash's `wait` would never return
    /// and the tests' TERM would never arrive. A guest's init or systemd starts the companion clean;
    /// so does this.
    static let cleanStart = """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.execv(sys.argv[1], sys.argv[1:])
        """

    /// Runs `run.sh` with `shell` (and `arguments` before the script) and fails with its output.
    static func runTests(_ shell: String, _ arguments: [String] = []) async throws {
        var environment = ProcessInfo.processInfo.environment
        if FileManager.default.isExecutableFile(atPath: RecontextdProcess.binary) {
            environment["RECONTEXTD_BINARY"] = RecontextdProcess.binary
        }
        let finalEnvironment = environment
        let result = try await offload {
            try ProcessRunner.runAllowingFailure(
                "/usr/bin/python3", ["-c", cleanStart, shell] + arguments + [script], environment: finalEnvironment)
        }
        #expect(
            result.status == 0,
            "guest/tests/run.sh under \(([shell] + arguments).joined(separator: " ")) exited \(result.status):\n\(result.standardOutput)\(result.standardError)"
        )
        #expect(result.standardOutput.contains("passed "), "no summary line:\n\(result.standardOutput)")
    }

    @Test("run.sh passes under bash", .realPart(missing: skipReason("/bin/bash", package: "bash")))
    func bash() async throws {
        try await Self.runTests("/bin/bash")
    }

    @Test("run.sh passes under dash", .realPart(missing: skipReason("/bin/dash", package: "dash")))
    func dash() async throws {
        try await Self.runTests("/bin/dash")
    }

    @Test(
        "run.sh passes under busybox sh with busybox's tools",
        .realPart(missing: skipReason("/bin/busybox", package: "busybox")))
    func busybox() async throws {
        try await Self.runTests("/bin/busybox", ["sh"])
    }
}
