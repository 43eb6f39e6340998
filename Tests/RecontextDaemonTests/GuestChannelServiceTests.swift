import Foundation
import Prometheus
import RecontextCore
import RecontextDaemon
import TestSupport
import Testing

/// The host end of the guest channel in process: the daemon's service group over the fakes, with
/// fake ports where the test plays each guest, hostile ones included. No root, no libvirtd.
@Suite("Host-guest channel in process (fake ports, hostile guests)")
struct GuestChannelServiceTests {
    typealias Rig = DaemonServiceTests.Rig
    static let web = DaemonServiceTests.web
    static let db = DomainIdentity(name: "db1", uuid: "2b7d9e4f-5a6c-4d8e-8f01-23456789abcd")
    static let addMe = DomainIdentity(name: "add1", uuid: "3c8e0f5a-6b7d-4e9f-9012-3456789abcde")
    static let none = DomainIdentity(name: "plain1", uuid: "4d9f1a6b-7c8e-4fa0-a123-456789abcdef")

    /// A rig with `web` and `db` on the channel, `add1` asking for it, `plain1` without it.
    static func rig(_ label: String, metrics: MetricsRecorder = MetricsRecorder()) async throws -> (Rig, FakeGuestPorts)
    {
        let ports = FakeGuestPorts()
        let rig = try await Rig(label, guestPorts: ports, metrics: metrics)
        for identity in [db, addMe, none] {
            let metadata =
                identity == addMe
                ? DaemonServiceTests.metadata.replacingOccurrences(
                    of: "format=\"nocloud\"", with: "format=\"nocloud\" channel=\"add\"")
                : DaemonServiceTests.metadata
            rig.hypervisor.add(
                FakeHypervisor.Domain(
                    identity: identity, drives: [ContextDrive(target: "sda", bus: "sata", source: nil)],
                    contextMetadata: metadata))
        }
        ports.addChannel(to: web.uuid)
        ports.addChannel(to: db.uuid)
        return (rig, ports)
    }

    /// What the guest of `uuid` was told last: generation and hash.
    static func told(_ ports: FakeGuestPorts, _ uuid: String) -> (UInt64, String)? {
        guard let line = ports.port(of: uuid)?.sentLines.last else { return nil }
        let tokens = line.dropLast().split(separator: " ")
        guard tokens.count == 4, let generation = UInt64(tokens[2]) else { return nil }
        return (generation, String(tokens[3].dropFirst("hash=".count)))
    }

    static func ack(_ generation: UInt64, _ hash: String, result: String = "ok") -> String {
        "recontext/1 applied \(generation) result=\(result) hash=\(hash) host=hv-test trigger=notify "
            + "hooks=10-endpoint:ok,20-ntp:failed:3 ms=12\n"
    }

    static func guestStatus(_ rig: Rig, _ uuid: String) -> GuestStatusStore.Record? {
        GuestStatusStore(stateDirectory: rig.directory + "/state").all()[uuid]
    }

    @Test(
        "after the insert the host says 'generation N'; the guest's ack lands in the coordinator, the metadata and status"
    )
    func ackFlows() async throws {
        let (rig, ports) = try await Self.rig("guest-ack")
        try await rig.run {
            #expect(await eventually { rig.isReady })
            #expect(await eventually { Self.told(ports, Self.web.uuid) != nil })
            let (generation, hash) = try #require(Self.told(ports, Self.web.uuid))
            #expect(generation == 1)
            ports.port(of: Self.web.uuid)?.guestWrites(Self.ack(generation, hash, result: "hooks-failed"))
            #expect(await eventually { await rig.coordinator.applied(of: Self.web.uuid)?.guest?.generation == 1 })
            #expect(
                await eventually {
                    rig.hypervisor.domain(Self.web.uuid)?.liveApplied?.contains("guest-result=\"hooks-failed\"") == true
                })
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict == "accepted" })
            let status = try #require(Self.guestStatus(rig, Self.web.uuid))
            #expect(status.channel == "open" && status.lastAck?.failedHooks == ["20-ntp"])
            #expect(status.lastAck?.latencyMilliseconds != nil)
            // A hello from a guest that lags gets the generation again.
            let sent = ports.port(of: Self.web.uuid)?.sentLines.count ?? 0
            ports.port(of: Self.web.uuid)?.guestWrites("recontext/1 hello version=0.2.0 applied=0 hash=-\n")
            #expect(await eventually { (ports.port(of: Self.web.uuid)?.sentLines.count ?? 0) == sent + 1 })
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.companionVersion == "0.2.0" })
        }
    }

    @Test("garbage, invalid UTF-8, an endless line and claims: dropped or rejected, counted, the record untouched")
    func hostileLines() async throws {
        let (rig, ports) = try await Self.rig("guest-hostile")
        try await rig.run {
            #expect(
                await eventually { Self.told(ports, Self.web.uuid) != nil && Self.told(ports, Self.db.uuid) != nil })
            let (generation, hash) = try #require(Self.told(ports, Self.web.uuid))
            let (_, dbHash) = try #require(Self.told(ports, Self.db.uuid))
            let port = try #require(ports.port(of: Self.web.uuid))
            port.guestWrites("rm -rf /\n")
            port.guestWrites([0xFF, 0xFE, 0x00, 0x0A])
            port.guestWrites([UInt8](repeating: UInt8(ascii: "A"), count: 100_000) + [0x0A])
            port.guestWrites(Self.ack(generation + 98, hash)) // a generation it was never given
            port.guestWrites(Self.ack(generation, dbHash)) // another domain's hash
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict == "rejected" })
            #expect(await rig.coordinator.applied(of: Self.web.uuid)?.guest == nil)
            #expect(rig.hypervisor.domain(Self.web.uuid)?.liveApplied?.contains("guest-generation") == false)
            // Then an honest ack still counts.
            port.guestWrites(Self.ack(generation, hash))
            #expect(await eventually { await rig.coordinator.applied(of: Self.web.uuid)?.guest?.generation == 1 })
            let status = try #require(Self.guestStatus(rig, Self.web.uuid))
            #expect(status.dropped == ["unknown-version": 1, "not-printable-ascii": 1, "oversized": 1])
            #expect(await rig.coordinator.applied(of: Self.db.uuid)?.guest == nil, "db's record is db's own")
        }
    }

    @Test("the metrics: acks by verdict and result, drops by reason, the latency histogram, open ports, lagging guests")
    func metrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let recorder = MetricsRecorder(factory: MetricsExporter.makeFactory(registry: registry))
        let (rig, ports) = try await Self.rig("guest-metrics", metrics: recorder)
        try await rig.run {
            #expect(
                await eventually { Self.told(ports, Self.web.uuid) != nil && Self.told(ports, Self.db.uuid) != nil })
            let (generation, hash) = try #require(Self.told(ports, Self.web.uuid))
            ports.port(of: Self.web.uuid)?.guestWrites(
                "junk\n" + Self.ack(generation, hash) + Self.ack(generation + 5, hash))
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict == "rejected" })
            #expect(await eventually { registry.emitToString().contains("recontextd_guests_lagging 2.0") })
            let text = registry.emitToString()
            for line in [
                #"recontextd_guest_acks_total{verdict="accepted",result="ok"} 1"#,
                #"recontextd_guest_acks_total{verdict="rejected",result="ok"} 1"#,
                #"recontextd_guest_lines_dropped_total{reason="malformed"} 1"#,
                "recontextd_guest_channels_open 3.0",
                "recontextd_event_to_guest_applied_seconds_count 1",
            ] {
                #expect(text.contains(line), "\(line) in:\n\(text)")
            }
        }
    }

    @Test("a guest replaying its ack costs one metadata write, not one per line")
    func replayedAck() async throws {
        let (rig, ports) = try await Self.rig("guest-replay")
        try await rig.run {
            #expect(await eventually { Self.told(ports, Self.web.uuid) != nil })
            let (generation, hash) = try #require(Self.told(ports, Self.web.uuid))
            await rig.coordinator.waitUntilIdle()
            let writes = { rig.hypervisor.calls(.setAppliedMetadata).count }
            let before = writes()
            ports.port(of: Self.web.uuid)?.guestWrites(String(repeating: Self.ack(generation, hash), count: 6))
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict == "accepted" })
            #expect(await eventually { writes() == before + 1 })
            await rig.coordinator.waitUntilIdle()
            #expect(writes() == before + 1)
        }
    }

    @Test("an ack that comes before the run has written what it inserted is taken when the run ends, not rejected")
    func ackBeforeBookkeeping() async throws {
        let (rig, ports) = try await Self.rig("guest-early")
        try await rig.run {
            #expect(await eventually { Self.told(ports, Self.web.uuid)?.0 == 1 })
            await rig.coordinator.waitUntilIdle()
            // A new generation whose run is held in its record phase, after the insert and the
            // host's "generation 2": a fast guest answers meanwhile.
            rig.hypervisor.update(Self.web.uuid) {
                $0.contextMetadata = $0.contextMetadata?.replacingOccurrences(of: "}}<", with: "}} 2<")
            }
            rig.hypervisor.hold(.setAppliedMetadata)
            rig.events.emit(.contextMetadataChanged(Self.web))
            try #require(await eventually { Self.told(ports, Self.web.uuid)?.0 == 2 })
            let (generation, hash) = try #require(Self.told(ports, Self.web.uuid))
            await rig.hypervisor.waitUntilHeld(1)
            // The hello after the ack shows in status once the service has handled both (in order).
            ports.port(of: Self.web.uuid)?.guestWrites(
                Self.ack(generation, hash) + "recontext/1 hello version=0.3.0 applied=1 hash=\(hash)\n")
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.companionVersion == "0.3.0" })
            #expect(await rig.coordinator.applied(of: Self.web.uuid)?.guest == nil)
            #expect(Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict != "rejected")
            rig.hypervisor.release()
            #expect(await eventually { await rig.coordinator.applied(of: Self.web.uuid)?.guest?.generation == 2 })
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.lastAck?.verdict == "accepted" })
            #expect(Self.guestStatus(rig, Self.web.uuid)?.lastAck?.latencyMilliseconds != nil)
            #expect(
                await eventually {
                    rig.hypervisor.domain(Self.web.uuid)?.liveApplied?.contains("guest-generation=\"2\"") == true
                })
        }
    }

    @Test("a flooding guest has its port closed for a while; another guest's ack is taken meanwhile")
    func flood() async throws {
        let (rig, ports) = try await Self.rig("guest-flood")
        try await rig.run {
            #expect(
                await eventually { Self.told(ports, Self.web.uuid) != nil && Self.told(ports, Self.db.uuid) != nil })
            let flooder = try #require(ports.port(of: Self.web.uuid))
            let flood = String(repeating: "recontext/1 hello version=1 applied=x hash=-\n", count: 5_000)
            flooder.guestWrites(flood)
            #expect(await eventually { flooder.isClosed })
            #expect(await eventually { Self.guestStatus(rig, Self.web.uuid)?.channel == "muted" })
            #expect(flooder.unread > 0, "the host stopped reading at the flood rule, not at the end of the flood")
            let (generation, hash) = try #require(Self.told(ports, Self.db.uuid))
            ports.port(of: Self.db.uuid)?.guestWrites(Self.ack(generation, hash))
            #expect(await eventually { await rig.coordinator.applied(of: Self.db.uuid)?.guest?.generation == 1 })
            // Muted: a new run does not reopen the port.
            rig.events.emit(.contextMetadataChanged(Self.web))
            await rig.coordinator.waitUntilIdle()
            #expect(ports.ports(of: Self.web.uuid).count == 1)
        }
    }

    @Test("a port that keeps ending costs a reopen per run, nothing else")
    func portEndsInALoop() async throws {
        let (rig, ports) = try await Self.rig("guest-loop")
        try await rig.run {
            #expect(await eventually { Self.told(ports, Self.web.uuid) != nil })
            for round in 0..<20 {
                ports.port(of: Self.web.uuid)?.end()
                rig.events.emit(.contextMetadataChanged(Self.web))
                await rig.coordinator.waitUntilIdle()
                #expect(await eventually { ports.ports(of: Self.web.uuid).count == round + 2 })
            }
            let (generation, hash) = try #require(Self.told(ports, Self.db.uuid))
            ports.port(of: Self.db.uuid)?.guestWrites(Self.ack(generation, hash))
            #expect(await eventually { await rig.coordinator.applied(of: Self.db.uuid)?.guest?.generation == 1 })
        }
    }

    @Test("a port whose libvirt connection was replaced (a reconnect) is reopened by the next run")
    func reopenedAfterReconnect() async throws {
        let (rig, ports) = try await Self.rig("guest-reconnect")
        try await rig.run {
            #expect(await eventually { Self.told(ports, Self.web.uuid) != nil })
            let old = try #require(ports.port(of: Self.web.uuid))
            old.transport.withLock { $0 = false }
            rig.events.emit(.contextMetadataChanged(Self.web))
            #expect(await eventually { ports.ports(of: Self.web.uuid).count == 2 })
            #expect(old.isClosed)
            #expect(await eventually { ports.port(of: Self.web.uuid)?.sentLines.count == 1 }, "told where it stands")
        }
    }

    @Test("channel=\"add\" adds the port; a domain without it shows why in status")
    func addAndAbsent() async throws {
        let (rig, ports) = try await Self.rig("guest-add")
        try await rig.run {
            #expect(await eventually { Self.told(ports, Self.addMe.uuid) != nil })
            #expect(ports.added == [Self.addMe.uuid])
            #expect(await eventually { Self.guestStatus(rig, Self.none.uuid)?.channel == "absent" })
            #expect(Self.guestStatus(rig, Self.none.uuid)?.channelDetail?.contains("org.recontextd.channel.0") == true)
        }
    }
}
