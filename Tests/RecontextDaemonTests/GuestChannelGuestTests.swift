import Foundation
import TestSupport
import Testing

/// The guest end of the host-guest channel in a real guest: the busybox test guest
/// (`Tests/Harness/guest/`, under TCG) runs `recontext-channel` on its virtio-serial port
/// `org.recontextd.channel.0`, and `Tests/Harness/guest/channel-check.py` plays the host's part on a
/// private libvirt host, through the channel's unix socket (no recontextd, no channel code of the
/// daemon): a hello, `generation N` after each forced media change answered by `applied N` and the
/// hook's `RECONTEXT-HOOK endpoint=… generation=N` on the serial console, the listener idle with the
/// host end connected and without it, and a fresh hello when the host end comes back.
@Suite(
    "a real guest applies and acknowledges each generation announced on the channel",
    .serialized, .realPart(missing: LibvirtTestHost.skipReason))
struct GuestChannelGuestTests {
    static let harness = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Harness/guest")

    /// The figures `channel-check.py` prints (one JSON line).
    struct Figures: Decodable {
        /// The listener's CPU and memory over an idle spell.
        struct Idle: Decodable {
            var seconds: Double
            var cpuTicks: Int
            var cpuPercent: Double
            var rssKib: Int
        }
        var lineToAckMs: [Int]
        var lineToAckMedianMs: Int
        var triggers: [String]
        var idleConnected: Idle
        var idleDisconnected: Idle
        var reconnectLineToAckMs: Int
    }

    @Test("hello, generation N -> applied N and the hook's console line, idle, reconnect")
    func channelInTheGuest() async throws {
        _ = try ProcessRunner.run(
            "/bin/sh",
            [Self.harness.appendingPathComponent("build-guest.sh").path, GuestMigrationTests.guestDirectory])
        var arguments = [
            "/usr/bin/python3", Self.harness.appendingPathComponent("channel-check.py").path,
            "--guest-dir", GuestMigrationTests.guestDirectory, "--rounds", "5", "--idle", "10",
            // The companion's --watch polls every 30 s instead of every second: on a busy machine it
            // took the disc first in 4 of 5 changes, and this test is about the channel's path.
            "--cmdline", "recontext.watch=30",
        ]
        if FileManager.default.isExecutableFile(atPath: RecontextdProcess.binary) {
            arguments += ["--recontextd", RecontextdProcess.binary]
        }
        let finalArguments = arguments
        // A clean signal mask for the harness and the libvirtd it starts (see GuestCompanionTests).
        let result = try await offload {
            try ProcessRunner.runAllowingFailure(
                "/usr/bin/python3", ["-c", GuestCompanionTests.cleanStart] + finalArguments)
        }
        try #require(
            result.status == 0,
            "channel-check.py exited \(result.status):\n\(result.standardOutput)\(result.standardError)")
        let line = try #require(result.standardOutput.split(separator: "\n").last.map(String.init))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let figures = try decoder.decode(Figures.self, from: Data(line.utf8))
        #expect(figures.lineToAckMs.count == 5)
        // A watch poll may still take a disc first; the channel must have applied one at least.
        #expect(figures.triggers.contains("notify"), "\(figures.triggers)")
        print(
            "guest channel: line to ack \(figures.lineToAckMs) ms (median \(figures.lineToAckMedianMs)), "
                + "after reconnecting \(figures.reconnectLineToAckMs) ms; listener idle connected "
                + "\(figures.idleConnected.cpuPercent) % CPU, disconnected \(figures.idleDisconnected.cpuPercent) % "
                + "CPU, RSS \(figures.idleConnected.rssKib) KiB")
    }
}
