import Foundation
import Logging
import RecontextConfiguration
import RecontextCore
import RecontextDaemon
import ServiceLifecycle
import TestSupport
import Testing

/// The daemon's service group, in process, over the fakes: no root, no libvirtd.
///
/// Each test builds the daemon with ``Daemon/init(options:configuration:hypervisor:events:logger:readiness:metrics:sleeper:)``
/// as `recontextd run` does with libvirt, runs its `ServiceGroup`, and drives it through the fake
/// event source, the fake hypervisor and the reload stream.
@Suite("Daemon services in process (fakes)")
struct DaemonServiceTests {
    static let web = DomainIdentity(name: "web1", uuid: "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab")
    static let metadata = """
        <recontext:context xmlns:recontext="\(ContextMetadata.namespaceURI)" format="nocloud">\
        <recontext:file path="etc/monitoring.conf" template="yes">endpoint={{host.monitoring_endpoint}}</recontext:file>\
        </recontext:context>
        """

    /// One daemon over the fakes, with its files in a directory of its own.
    final class Rig: Sendable {
        let directory: String
        let hypervisor = FakeHypervisor()
        let events = FakeEventSource()
        let readiness = Collected<Daemon.ReadinessEvent>()
        let reloads: AsyncStream<Void>
        let reloadRequests: AsyncStream<Void>.Continuation
        let daemon: Daemon
        let group: ServiceGroup

        init(
            _ label: String, budget: String = "40", endpoint: String = "10.0.0.1:9100",
            guestPorts: (any GuestPortOpener)? = nil, metrics: MetricsRecorder = MetricsRecorder()
        ) async throws {
            directory = try TestDirectories.makeImageDirectory("daemon-services-\(label)")
            try Self.writeConfig(directory: directory, endpoint: endpoint, budget: budget)
            let options = DaemonOptions(
                configurationPath: directory + "/recontextd.yaml", stateDirectory: directory + "/state")
            let configuration = try options.loadConfiguration()
            hypervisor.add(
                FakeHypervisor.Domain(
                    identity: DaemonServiceTests.web, drives: [ContextDrive(target: "sda", bus: "sata", source: nil)],
                    contextMetadata: DaemonServiceTests.metadata))
            (reloads, reloadRequests) = AsyncStream.makeStream(of: Void.self)
            let readiness = self.readiness
            daemon = try await Daemon(
                options: options, configuration: configuration, hypervisor: hypervisor, events: events,
                logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, readiness: { readiness.append($0) },
                metrics: metrics, guestPorts: guestPorts)
            group = daemon.serviceGroup(reloads: reloads)
        }

        static func writeConfig(directory: String, endpoint: String, budget: String) throws {
            let yaml = """
                libvirt:
                  uri: "fake:///events"
                images:
                  directory: \(directory)/images
                host:
                  name: hv-test
                  variables:
                    monitoring_endpoint: \(endpoint)
                pipeline:
                  reconcile-interval: 0
                  shutdown-budget: \(budget)
                  retry:
                    attempts: 2
                    initial-backoff: 10ms
                """
            try yaml.write(toFile: directory + "/recontextd.yaml", atomically: true, encoding: .utf8)
        }

        /// Runs the group around `body`, then shuts it down gracefully and waits for it to end.
        func run(_ body: () async throws -> Void) async throws {
            let group = self.group
            try await withThrowingDiscardingTaskGroup { tasks in
                tasks.addTask { try await group.run() }
                do {
                    try await body()
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
                await group.triggerGracefulShutdown()
            }
        }

        var coordinator: DomainCoordinator { daemon.context.coordinator }
        /// The media changes of the live domain, in order.
        var liveInserts: [String?] {
            hypervisor.calls(.changeMedia).filter { $0.succeeded && $0.scope?.contains(.live) == true }.map(\.source)
        }
        var status: [String: StatusStore.Record] { StatusStore(stateDirectory: directory + "/state").all() }
        var isReady: Bool { readiness.all.contains(.ready) }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test("start: READY only after the first reconcile's runs are done")
    func startAndReady() async throws {
        let rig = try await Rig("ready")
        let insertsAtReady = Collected<Int>()
        try await rig.run {
            #expect(await eventually { rig.isReady })
            insertsAtReady.append(rig.liveInserts.count)
            #expect(rig.events.subscriptions == 1)
        }
        #expect(insertsAtReady.all == [1], "the domain had its image when READY was sent")
        #expect(rig.status[Self.web.uuid]?.trigger == "reconcile")
        #expect(rig.readiness.all.last == .stopping)
    }

    @Test("an event becomes one run, with its trigger")
    func eventBecomesRun() async throws {
        let rig = try await Rig("event")
        try await rig.run {
            #expect(await eventually { rig.isReady })
            let before = rig.hypervisor.calls(.snapshot).count
            rig.events.emit(.lifecycle(Self.web, .startedMigrated))
            rig.events.emit(.lifecycle(Self.web, .resumedMigrated))
            #expect(await eventually { rig.status[Self.web.uuid]?.trigger == "migrated-in" })
            await rig.coordinator.waitUntilIdle()
            #expect(rig.hypervisor.calls(.snapshot).count == before + 1, "STARTED/MIGRATED alone started nothing")
        }
    }

    @Test("a burst of events while a run is in progress makes one follow-up run")
    func burstCoalesced() async throws {
        let rig = try await Rig("burst")
        try await rig.run {
            #expect(await eventually { rig.isReady })
            let before = rig.hypervisor.calls(.snapshot).count
            rig.hypervisor.hold(.snapshot)
            rig.events.emit(.contextMetadataChanged(Self.web))
            await rig.hypervisor.waitUntilHeld(1)
            for _ in 0..<20 { rig.events.emit(.contextMetadataChanged(Self.web)) }
            #expect(await eventually { await rig.coordinator.submissions >= 22 })
            rig.hypervisor.release()
            await rig.coordinator.waitUntilIdle()
            #expect(rig.hypervisor.calls(.snapshot).count == before + 2)
            #expect(await rig.coordinator.coalesced == 19)
        }
    }

    @Test("a reload with new host facts gives the domain a new image; a bad file keeps the old configuration")
    func reload() async throws {
        let rig = try await Rig("reload")
        try await rig.run {
            #expect(await eventually { rig.isReady })
            try "host: [".write(toFile: rig.directory + "/recontextd.yaml", atomically: true, encoding: .utf8)
            rig.reloadRequests.yield()
            #expect(await eventually { rig.readiness.all.filter { $0 == .ready }.count == 2 })
            #expect(rig.liveInserts.count == 1, "an invalid file changed nothing")

            try Rig.writeConfig(directory: rig.directory, endpoint: "10.9.9.9:9100", budget: "40")
            rig.reloadRequests.yield()
            #expect(await eventually { rig.status[Self.web.uuid]?.trigger == "reload" })
            #expect(rig.liveInserts.count == 2)
            #expect(rig.status[Self.web.uuid]?.generation == 2)
            #expect(rig.daemon.context.configuration.host.variables["monitoring_endpoint"] == "10.9.9.9:9100")
        }
        #expect(rig.readiness.all.filter { $0 == .reloading }.count == 2)
    }

    @Test("a lost connection: reconnect with backoff, subscribe again, reconcile")
    func reconnect() async throws {
        let rig = try await Rig("reconnect")
        try await rig.run {
            #expect(await eventually { rig.isReady })
            let before = rig.hypervisor.calls(.snapshot).count
            rig.events.failSubscriptions(2)
            rig.events.dropConnection()
            #expect(await eventually { rig.events.subscriptions == 2 })
            #expect(rig.events.failedSubscriptions == 2)
            #expect(await eventually { rig.hypervisor.calls(.snapshot).count == before + 1 }, "the reconcile ran")
            #expect(rig.events.emit(.contextMetadataChanged(Self.web)), "events flow on the new connection")
            #expect(await eventually { rig.hypervisor.calls(.snapshot).count == before + 2 })
        }
    }

    @Test("graceful shutdown lets a run in flight finish its swap, then closes the connection")
    func shutdownWithRunInFlight() async throws {
        let rig = try await Rig("drain")
        let group = rig.group
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { rig.isReady })
            rig.hypervisor.hold(.changeMedia)
            try Rig.writeConfig(directory: rig.directory, endpoint: "10.7.7.7:9100", budget: "40")
            rig.reloadRequests.yield()
            await rig.hypervisor.waitUntilHeld(1)
            await group.triggerGracefulShutdown()
            #expect(await eventually { rig.readiness.all.contains(.stopping) })
            #expect(rig.events.disconnects == 0, "the connection stays while a run needs it")
            rig.hypervisor.release()
        }
        #expect(rig.liveInserts.count == 2, "the swap in flight completed")
        #expect(rig.status[Self.web.uuid]?.result == "applied")
        #expect(rig.events.disconnects == 1)
        #expect(await rig.coordinator.leftAtShutdown.isEmpty)
    }

    @Test("graceful shutdown cancels a run that would outlast the budget, and names its domain")
    func shutdownBudgetSpent() async throws {
        let rig = try await Rig("budget", budget: "200ms")
        let group = rig.group
        let clock = ContinuousClock()
        var stopped = clock.now
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { rig.isReady })
            // A media change that would take ten minutes (a stuck libvirt call).
            rig.hypervisor.delay(.changeMedia, by: .seconds(600))
            try Rig.writeConfig(directory: rig.directory, endpoint: "10.6.6.6:9100", budget: "200ms")
            rig.reloadRequests.yield()
            #expect(await eventually { await rig.coordinator.activeRuns == 1 })
            stopped = clock.now
            await group.triggerGracefulShutdown()
        }
        #expect(clock.now - stopped < .seconds(30), "the group ended soon after the budget")
        #expect(await rig.coordinator.leftAtShutdown == [Self.web.uuid])
        #expect(rig.events.disconnects == 1)
    }
}
