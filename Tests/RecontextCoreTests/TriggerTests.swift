import Foundation
import TestSupport
import Testing

@testable import RecontextCore

// MARK: - Scenarios

/// A sequence of hypervisor events and the runs it should start.
struct TriggerScenario: Sendable, CustomTestStringConvertible {
    static let a = DomainIdentity(name: "web1", uuid: "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab")
    static let b = DomainIdentity(name: "db1", uuid: "11111111-2222-4333-8444-555555555555")

    var name: String
    var events: [HypervisorEvent]
    var expected: [Trigger]

    init(_ name: String, _ events: [HypervisorEvent], _ expected: [Trigger]) {
        self.name = name
        self.events = events
        self.expected = expected
    }

    /// Lifecycle events of domain `a`.
    init(_ name: String, a signals: [LifecycleSignal], _ expected: [Trigger]) {
        self.init(name, signals.map { .lifecycle(Self.a, $0) }, expected)
    }

    var testDescription: String { name }

    static let all: [TriggerScenario] = [
        TriggerScenario("RESUMED/MIGRATED runs", a: [.resumedMigrated], [.migratedIn]),
        TriggerScenario("STARTED/MIGRATED alone does not run", a: [.startedMigrated], []),
        TriggerScenario(
            "STARTED/MIGRATED then RESUMED/MIGRATED runs once", a: [.startedMigrated, .resumedMigrated], [.migratedIn]),
        TriggerScenario(
            "arrived paused: STARTED/MIGRATED then SUSPENDED/PAUSED runs", a: [.startedMigrated, .suspendedPaused],
            [.arrivedPaused]),
        TriggerScenario(
            "arrived paused, later resumed: no second run",
            a: [.startedMigrated, .suspendedPaused, .resumedOther, .suspendedPaused],
            [.arrivedPaused]),
        TriggerScenario(
            "aborted migration: STARTED/MIGRATED then STOPPED/FAILED does nothing",
            a: [.startedMigrated, .stoppedFailed], []),
        TriggerScenario(
            "aborted migration, then an unrelated SUSPENDED/PAUSED does not run",
            a: [.startedMigrated, .stoppedFailed, .suspendedPaused],
            []),
        TriggerScenario("an ordinary pause does not run", a: [.suspendedPaused], []),
        TriggerScenario("STARTED/BOOTED runs", a: [.startedBooted], [.started]),
        TriggerScenario("STARTED/RESTORED runs", a: [.startedRestored], [.started]),
        TriggerScenario(
            "leaving: SUSPENDED/MIGRATED then STOPPED/MIGRATED does nothing",
            a: [.suspendedMigrated, .stoppedMigrated], []),
        TriggerScenario(
            "other lifecycle events do nothing",
            a: [.defined, .resumedOther, .suspendedOther, .stoppedOther, .undefined, .other], []),
        TriggerScenario("a context metadata change runs", [.contextMetadataChanged(a)], [.metadataChanged]),
        TriggerScenario("a closed connection does nothing", [.connectionClosed("end of file from libvirtd")], []),
        TriggerScenario(
            "an incoming migration of one domain does not make another's pause a trigger",
            [.lifecycle(a, .startedMigrated), .lifecycle(b, .suspendedPaused), .lifecycle(a, .suspendedPaused)],
            [.arrivedPaused]),
        TriggerScenario(
            "a boot after an aborted incoming migration runs",
            [.lifecycle(a, .startedMigrated), .lifecycle(a, .stoppedFailed), .lifecycle(a, .startedBooted)], [.started]),
    ]
}

// MARK: - TriggerPolicy

@Suite("TriggerPolicy")
struct TriggerPolicyTests {
    @Test("which events start a run", arguments: TriggerScenario.all)
    func scenario(_ scenario: TriggerScenario) {
        var policy = TriggerPolicy()
        let triggers = scenario.events.compactMap { policy.trigger(for: $0) }
        #expect(triggers == scenario.expected)
    }

    @Test(
        "an incoming migration is remembered until it resumes, pauses or stops",
        arguments: [
            LifecycleSignal.resumedMigrated, .suspendedPaused, .stoppedFailed, .stoppedMigrated, .stoppedOther,
            .undefined, .startedBooted,
        ])
    func incomingForgotten(end: LifecycleSignal) {
        var policy = TriggerPolicy()
        #expect(policy.trigger(for: .lifecycle(TriggerScenario.a, .startedMigrated)) == nil)
        #expect(policy.incomingMigrations == [TriggerScenario.a.uuid])
        _ = policy.trigger(for: .lifecycle(TriggerScenario.a, end))
        #expect(policy.incomingMigrations.isEmpty)
    }

    @Test(
        "events that neither start nor end an arrival leave it incoming",
        arguments: [
            LifecycleSignal.defined, .resumedOther, .suspendedOther, .suspendedMigrated, .other,
        ])
    func incomingKept(event: LifecycleSignal) {
        var policy = TriggerPolicy()
        _ = policy.trigger(for: .lifecycle(TriggerScenario.a, .startedMigrated))
        #expect(policy.trigger(for: .lifecycle(TriggerScenario.a, event)) == nil)
        #expect(policy.incomingMigrations == [TriggerScenario.a.uuid])
        #expect(policy.trigger(for: .lifecycle(TriggerScenario.a, .suspendedPaused)) == .arrivedPaused)
    }
}

// MARK: - Controller

/// A controller over a scheduler whose runner only records what reaches it.
struct ControllerHarness {
    let hypervisor = FakeHypervisor()
    let submitted = Collected<String>()
    let scheduler: DomainScheduler
    let controller: Controller

    init() {
        let submitted = self.submitted
        scheduler = DomainScheduler(concurrency: 2) { uuid, trigger in
            submitted.append("\(uuid) \(trigger)")
            return RunReport(
                uuid: uuid, domain: nil, trigger: trigger, runID: "test", outcome: .skipped(.notManaged),
                timings: PhaseTimings())
        }
        controller = Controller(scheduler: scheduler, hypervisor: hypervisor, logger: PipelineHarness.logger)
    }
}

@Suite("Controller")
struct ControllerTests {
    @Test("events reach the scheduler as the trigger policy decides", arguments: TriggerScenario.all)
    func scenario(_ scenario: TriggerScenario) async {
        let harness = ControllerHarness()
        var returned: [Trigger] = []
        var expectedRuns: [String] = []
        for event in scenario.events {
            if let trigger = await harness.controller.handle(event) {
                returned.append(trigger)
                switch event {
                case .lifecycle(let domain, _), .contextMetadataChanged(let domain):
                    expectedRuns.append("\(domain.uuid) \(trigger)")
                case .connectionClosed: Issue.record("a closed connection started \(trigger)")
                }
            }
            await harness.scheduler.waitUntilIdle()
        }
        #expect(returned == scenario.expected)
        #expect(harness.submitted.all == expectedRuns)
        #expect(harness.submitted.count == scenario.expected.count)
        #expect(await harness.scheduler.submissions == scenario.expected.count)
    }

    @Test("events are counted by kind")
    func eventCounts() async {
        let harness = ControllerHarness()
        await harness.controller.handle(.lifecycle(TriggerScenario.a, .startedMigrated))
        await harness.controller.handle(.lifecycle(TriggerScenario.b, .startedMigrated))
        await harness.controller.handle(.contextMetadataChanged(TriggerScenario.a))
        await harness.controller.handle(.connectionClosed("eof"))
        await harness.scheduler.waitUntilIdle()
        #expect(
            await harness.controller.eventCounts == [
                "lifecycle.startedMigrated": 2, "metadata": 1, "connection-closed": 1,
            ])
    }

    @Test("reconcileAll submits every running or paused domain")
    func reconcile() async throws {
        let harness = ControllerHarness()
        let states: [DomainSnapshot.RunState] = [.running, .paused, .shutOff, .running, .other]
        for (index, state) in states.enumerated() {
            harness.hypervisor.add(
                FakeHypervisor.Domain(
                    identity: SchedulerHarness.domain(index), state: state, drives: [], contextMetadata: nil))
        }
        let count = try await harness.controller.reconcileAll(trigger: .reconcile)
        await harness.scheduler.waitUntilIdle()
        #expect(count == 3)
        let expected = [0, 1, 3].map { "\(SchedulerHarness.domain($0).uuid) reconcile" }
        #expect(harness.submitted.all.sorted() == expected.sorted())
    }

    @Test("reconcileAll reports a hypervisor failure and submits nothing")
    func reconcileFails() async {
        let harness = ControllerHarness()
        harness.hypervisor.add(FakeHypervisor.Domain(identity: TriggerScenario.a, drives: [], contextMetadata: nil))
        harness.hypervisor.fail(.activeDomains, kind: .transient)
        await #expect(throws: HypervisorError.self) {
            try await harness.controller.reconcileAll(trigger: .reconcile)
        }
        await harness.scheduler.waitUntilIdle()
        #expect(harness.submitted.count == 0)
    }

    @Test("a manual submission reaches the scheduler")
    func manual() async {
        let harness = ControllerHarness()
        await harness.controller.submit(TriggerScenario.a.uuid, trigger: .manual)
        await harness.scheduler.waitUntilIdle()
        #expect(harness.submitted.all == ["\(TriggerScenario.a.uuid) manual"])
    }
}
