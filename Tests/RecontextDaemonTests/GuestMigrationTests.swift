import Foundation
import RecontextCore
import TestSupport
import Testing
import Virt

/// A real Linux guest (Debian kernel + busybox, under TCG) that reads its context CD-ROM and
/// prints the monitoring endpoint to its serial console whenever it changes
/// (`Tests/Harness/guest/`), live-migrated between two hosts each running recontextd.
@Suite(
    "a real guest sees the destination host's context after each migration",
    .serialized, .realPart(missing: LibvirtTestHost.skipReason))
struct GuestMigrationTests {
    static let harness = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Harness/guest")
    /// Where `build-guest.sh` builds (and caches) the guest: `RECONTEXTD_TEST_GUEST_DIR`, else the
    /// shared cache. A branch that changes the guest's scripts can build into a directory of its own
    /// instead of rebuilding the cache other runs use.
    static let guestDirectory =
        ProcessInfo.processInfo.environment["RECONTEXTD_TEST_GUEST_DIR"] ?? "/var/cache/recontextd-tests/guest"

    /// The `RECONTEXT …` lines the guest printed so far.
    static func guestLines(_ serialLog: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: serialLog) else { return [] }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map(String.init).filter { $0.hasPrefix("RECONTEXT") }
    }

    /// The last `count` lines of the serial log, whatever they are.
    static func serialTail(_ serialLog: String, count: Int = 40) -> String {
        guard let data = FileManager.default.contents(atPath: serialLog) else { return "" }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).suffix(count)
            .joined(separator: "\n")
    }

    /// Waits for a new guest line containing `fragment` after the first `after` lines.
    static func waitForLine(_ serialLog: String, containing fragment: String, after: Int, timeout: Duration) async -> (
        String, Duration
    )? {
        let clock = ContinuousClock()
        let start = clock.now
        return await eventuallyValue(timeout: timeout, every: .milliseconds(20)) { () -> (String, Duration)? in
            let lines = guestLines(serialLog)
            guard lines.count > after, let line = lines[after...].first(where: { $0.contains(fragment) }) else {
                return nil
            }
            return (line, clock.now - start)
        }
    }

    /// Builds (or finds cached) the guest and starts two hosts, 15 and 16: `swift test --filter
    /// MigrationTests` runs this suite beside MigrationTests, whose hosts are 11 and 12 (the same
    /// numbers clashed on migration ports).
    static func guestHosts(_ name: String) async throws -> MigrationTests.TwoHosts {
        _ = try ProcessRunner.run(
            "/bin/sh", [harness.appendingPathComponent("build-guest.sh").path, guestDirectory])
        var setup = MigrationTests.TwoHosts.Setup()
        setup.numbers = (a: 15, b: 16)
        return try await MigrationTests.TwoHosts(name, setup: setup)
    }

    /// Defines the guest on A with its CD-ROM on `bus` (as `target`) and the endpoint file in its
    /// context, `extraCommandLine` added to the kernel's, and starts it.
    static func startGuest(
        _ name: String, on hosts: MigrationTests.TwoHosts, bus: String, target: String, serialLog: String,
        extraCommandLine: String = ""
    ) throws {
        var xml = try ProcessRunner.run(
            "/bin/sh",
            [harness.appendingPathComponent("guest-domain.xml.sh").path, name, bus, target, guestDirectory, serialLog])
        if !extraCommandLine.isEmpty {
            xml = xml.replacingOccurrences(of: "</cmdline>", with: " \(extraCommandLine)</cmdline>")
        }
        let domain = try hosts.connectionA.defineDomain(xml: xml)
        try domain.setMetadata(
            "<context format='nocloud'><file path='etc/monitoring.conf' template='yes'>endpoint={{host.monitoring_endpoint}}</file></context>",
            key: "recontext", namespace: ContextMetadata.namespaceURI, impact: .config)
        try domain.start()
    }

    /// Starts the guest on A (``startGuest``) and waits until it prints A's endpoint.
    static func bootOnA(
        _ name: String, hosts: MigrationTests.TwoHosts, bus: String, target: String, serialLog: String,
        extraCommandLine: String
    ) async throws {
        try startGuest(
            name, on: hosts, bus: bus, target: target, serialLog: serialLog, extraCommandLine: extraCommandLine)
        _ = try #require(
            await waitForLine(
                serialLog, containing: "monitoring_endpoint=\(MigrationTests.TwoHosts.endpointA)", after: 0,
                timeout: .seconds(180)),
            "serial log: \(guestLines(serialLog))\n\(hosts.daemonA.logText)")
    }

    /// `rounds` metadata changes of the guest on A (the endpoint file gets "/rN"), each waited for
    /// on the guest's console.
    static func changeOnA(
        _ name: String, hosts: MigrationTests.TwoHosts, serialLog: String, rounds: Int, timeout: Duration
    ) async throws {
        for round in 1...rounds {
            let before = guestLines(serialLog).count
            let xml =
                "<context format='nocloud'><var name='round'>\(round)</var><file path='etc/monitoring.conf' template='yes'>endpoint={{host.monitoring_endpoint}}/r\(round)</file></context>"
            try hosts.connectionA.domain(named: name).setMetadata(
                xml, key: "recontext", namespace: ContextMetadata.namespaceURI, impact: [.live, .config])
            let seen = await waitForLine(serialLog, containing: "/r\(round) ", after: before, timeout: timeout)
            #expect(
                seen != nil,
                """
                round \(round): \(guestLines(serialLog).suffix(3)) \(hosts.daemonA.logText.suffix(3000))
                serial log tail (with recontext.debug=1: debug lines and kernel messages):
                \(serialTail(serialLog))
                """)
        }
    }

    @Test("A to B and back to A: the guest prints each destination's monitoring endpoint")
    func guestFollowsMigrations() async throws {
        let hosts = try await Self.guestHosts("guest-migration")
        let serialLog = hosts.root + "/serial.log"
        let name = "guest-\(UUID().uuidString.prefix(6).lowercased())"
        do {
            try Self.startGuest(name, on: hosts, bus: "sata", target: "sda", serialLog: serialLog)

            let boot = try #require(
                await Self.waitForLine(
                    serialLog, containing: "monitoring_endpoint=\(MigrationTests.TwoHosts.endpointA)", after: 0,
                    timeout: .seconds(180)),
                "serial log: \(Self.guestLines(serialLog))")
            print("guest: boot to first context line: \(boot.1)")
            #expect(boot.0.contains("generation=1"))

            for (source, destination, endpoint, generation) in [
                (hosts.a, hosts.b, MigrationTests.TwoHosts.endpointB, 2),
                (hosts.b, hosts.a, MigrationTests.TwoHosts.endpointA, 3),
            ] {
                let before = Self.guestLines(serialLog).count
                let clock = ContinuousClock()
                let start = clock.now
                try hosts.migrate(name, from: source, to: destination, persistent: true, p2p: false)
                let migrated = clock.now - start
                let seen = try #require(
                    await Self.waitForLine(
                        serialLog, containing: "monitoring_endpoint=\(endpoint)", after: before, timeout: .seconds(60)),
                    "serial log: \(Self.guestLines(serialLog))")
                #expect(seen.0.contains("generation=\(generation)"), "\(seen.0)")
                #expect(seen.0.contains("host=\(destination.hostname)"), "\(seen.0)")
                print(
                    "guest: migration \(source.hostname) -> \(destination.hostname): virsh migrate \(migrated), then guest printed after \(seen.1)"
                )
            }
            // One line per generation, in order. The test guest's own reader (init's poll) may print
            // one more, torn line for a generation: a forced media change while it has the old disc
            // mounted makes it read the new disc's record beside a file still cached from the old
            // one (CI saw "generation=2 monitoring_endpoint=<A's> host=mig-host-b" once, then the
            // right line). A torn line is allowed only before its generation's right line.
            let lines = Self.guestLines(serialLog).filter { $0.contains("monitoring_endpoint=") }
            let expected = [
                "generation=1 monitoring_endpoint=\(MigrationTests.TwoHosts.endpointA) host=\(hosts.a.hostname)",
                "generation=2 monitoring_endpoint=\(MigrationTests.TwoHosts.endpointB) host=\(hosts.b.hostname)",
                "generation=3 monitoring_endpoint=\(MigrationTests.TwoHosts.endpointA) host=\(hosts.a.hostname)",
            ]
            #expect(lines.filter { line in expected.contains { line.hasSuffix($0) } }.count == 3, "\(lines)")
            let torn = lines.filter { line in !expected.contains { line.hasSuffix($0) } }
            for line in torn {
                let generation =
                    line.split(separator: " ").first { $0.hasPrefix("generation=") }.map(String.init) ?? "?"
                let right = lines.firstIndex { $0.hasSuffix(expected.first { $0.hasPrefix(generation + " ") } ?? "-") }
                #expect(
                    right.map { lines.firstIndex(of: line)! < $0 } ?? false,
                    "a line that is not a torn read before its generation's right line: \(line)\n\(lines)")
            }
            if !torn.isEmpty { print("guest: torn reads by the test guest's poll during a media change: \(torn)") }

            // Media changes while the guest has the disc mounted and its door locked (a Linux
            // guest locks it): each must go through at once (forced), never time out on the tray.
            try await Self.changeOnA(name, hosts: hosts, serialLog: serialLog, rounds: 8, timeout: .seconds(30))
            #expect(!hosts.daemonA.logText.contains("run failed"), "\(hosts.daemonA.logText)")
            _ = try? hosts.a.virsh(["destroy", name])
            _ = try? hosts.a.virsh(["undefine", name])
        } catch {
            Issue.record(
                "\(error)\nA: \(hosts.daemonA.logText)\nB: \(hosts.daemonB.logText)\nserial: \(Self.guestLines(serialLog))"
            )
        }
        await hosts.stop()
    }

    @Test(
        "a guest that keeps shutting its SCSI tray still gets every new disc (the drive is replaced when media changes keep failing)"
    )
    func guestShutsTheTray() async throws {
        let hosts = try await Self.guestHosts("guest-tray")
        let serialLog = hosts.root + "/serial-tray.log"
        let name = "tray-\(UUID().uuidString.prefix(6).lowercased())"
        do {
            // The test guest's own reader prints each disc; three loops open the drive without
            // pause, and each open closes an open tray (autoclose), as a Linux guest's programs do.
            try await Self.bootOnA(
                name, hosts: hosts, bus: "scsi", target: "sda", serialLog: serialLog,
                extraCommandLine: "recontext.companion=0 recontext.autoclose=1 recontext.traybusy=1")
            try await Self.changeOnA(name, hosts: hosts, serialLog: serialLog, rounds: 4, timeout: .seconds(60))
            let log = hosts.daemonA.logText
            #expect(!log.contains("run failed"), "\(log)")
            let shut = log.components(separatedBy: "change media (live) failed").count - 1
            let replaced = log.components(separatedBy: "stayed shut through every media change").count - 1
            print(
                "guest: tray kept shut by the guest: \(shut) media changes refused, \(replaced) of 5 runs replaced the drive"
            )
            _ = try? hosts.a.virsh(["destroy", name])
            _ = try? hosts.a.virsh(["undefine", name])
        } catch {
            Issue.record("\(error)\nA: \(hosts.daemonA.logText)\nserial: \(Self.guestLines(serialLog))")
        }
        await hosts.stop()
    }

    @Test(
        "a tray libvirt records open but the guest's reset of the drive shut is opened again, and the new disc goes in",
        arguments: [("ide", "hdc"), ("sata", "sda")])
    func staleTray(bus: String, target: String) async throws {
        let hosts = try await Self.guestHosts("guest-stale-tray-\(bus)")
        let serialLog = hosts.root + "/serial-stale-\(bus).log"
        let name = "stale-\(bus)-\(UUID().uuidString.prefix(6).lowercased())"
        do {
            // The guest resets its ATA link whenever it finds the drive empty (recontext.resetonempty).
            try await Self.bootOnA(
                name, hosts: hosts, bus: bus, target: target, serialLog: serialLog,
                extraCommandLine: "recontext.companion=0 recontext.resetonempty=1")
            // The tray opened as any guest can open it (libvirt sees QEMU's tray event): the guest
            // finds the drive empty and resets the link, which shuts the tray without an event.
            let alias = try #require(try hosts.connectionA.domain(named: name).cdroms().first?.alias)
            let before = Self.guestLines(serialLog).count
            _ = try hosts.a.virsh([
                "qemu-monitor-command", name,
                #"{"execute":"blockdev-open-tray","arguments":{"id":"\#(alias)","force":true}}"#,
            ])
            _ = try #require(
                await Self.waitForLine(
                    serialLog, containing: "RECONTEXT tray-reset", after: before, timeout: .seconds(60)),
                "serial log: \(Self.guestLines(serialLog).suffix(5))")
            // libvirt records the tray open, QEMU has it shut: the state every media change failed in.
            #expect(try hosts.connectionA.domain(named: name).cdroms().first?.tray == "open")
            let block = try hosts.a.virsh(["qemu-monitor-command", name, "--hmp", "info block"])
            #expect(block.contains("tray closed"), "\(block)")

            try await Self.changeOnA(name, hosts: hosts, serialLog: serialLog, rounds: 1, timeout: .seconds(60))
            let log = hosts.daemonA.logText
            #expect(!log.contains("run failed"), "\(log)")
            #expect(log.contains("the tray of \(target) was recorded open but was shut"), "\(log)")
            #expect(try hosts.connectionA.domain(named: name).cdroms().first?.tray == nil)
            _ = try? hosts.a.virsh(["destroy", name])
            _ = try? hosts.a.virsh(["undefine", name])
        } catch {
            Issue.record("\(error)\nA: \(hosts.daemonA.logText)\nserial: \(Self.guestLines(serialLog))")
        }
        await hosts.stop()
    }
}
