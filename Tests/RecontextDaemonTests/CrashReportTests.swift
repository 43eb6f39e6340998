import Foundation
import TestSupport
import Testing

/// Issue 11, defect 6: a crash of libvirtd or recontextd under a real-libvirt test is reported as
/// exactly that ("libvirtd crashed with SIGSEGV"), with every thread's stack from its core dump.
/// Real libvirtd (host 47), the real `recontextd` binary; needs root (it sets `core_pattern`).
@Suite(
    "crash reports: cores of the processes a test starts, with backtraces (real libvirtd)",
    .serialized, .enabled(if: LibvirtTestHost.isAvailable, "\(LibvirtTestHost.skipReason ?? "")"))
struct CrashReportTests {
    @Test("libvirtd and recontextd killed with SIGSEGV: each reported as crashed with SIGSEGV, with a backtrace")
    func segfaultsAreReported() async throws {
        let rig = try await ReliabilityRig(number: 47, label: "crash-report")
        defer { try? FileManager.default.removeItem(atPath: rig.directory) }
        try rig.writeConfig(endpoint: "http://mon-c.example:9090")
        // Swift's backtracer catches a SIGSEGV sent with kill(2), prints and carries on (a real
        // fault re-faults and dumps core): off here, so the signal takes its default action.
        let daemon = try rig.startDaemon(unblockedSignals: true, environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(await daemon.waitForLog("connected to libvirt"), "\(daemon.logText)")
        #expect(rig.host.crashes().isEmpty)

        daemon.signal(SIGSEGV)
        let libvirtd = rig.host.libvirtdPID
        kill(libvirtd, SIGSEGV)
        _ = await daemon.stop(timeout: .seconds(20))
        rig.host.stopBlocking()

        let daemonCrash = try #require(daemon.crash, "recontextd ended: \(daemon.exitDescription ?? "running")")
        #expect(daemonCrash.description.hasPrefix("recontextd crashed with SIGSEGV (pid \(daemon.pid)"))
        #expect(daemonCrash.backtrace.contains("Thread "), "\(daemonCrash.backtrace)")
        let hostCrashes = rig.host.crashes()
        #expect(hostCrashes.count == 1)
        let libvirtdCrash = try #require(hostCrashes.first)
        #expect(libvirtdCrash.description.hasPrefix("libvirtd crashed with SIGSEGV (pid \(libvirtd)"))
        // libvirt's exported symbols give readable frames without debug packages.
        #expect(libvirtdCrash.backtrace.contains("virNetDaemonRun") || libvirtdCrash.backtrace.contains("main"))
        print(
            "[issue 11 / 6] crash reports:\n\(libvirtdCrash.description.prefix(1500))\n\(daemonCrash.description.prefix(1500))"
        )
        for crash in [daemonCrash, libvirtdCrash] { try? FileManager.default.removeItem(atPath: crash.core) }
    }
}
