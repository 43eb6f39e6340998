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
        var policy = PolicyFold()
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
        var policy = PolicyFold()
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
        var policy = PolicyFold()
        _ = policy.trigger(for: .lifecycle(TriggerScenario.a, .startedMigrated))
        #expect(policy.trigger(for: .lifecycle(TriggerScenario.a, event)) == nil)
        #expect(policy.incomingMigrations == [TriggerScenario.a.uuid])
        #expect(policy.trigger(for: .lifecycle(TriggerScenario.a, .suspendedPaused)) == .arrivedPaused)
    }
}

/// Folds events through the pure ``TriggerPolicy``, keeping the incoming set as the
/// coordinator does.
struct PolicyFold {
    var incomingMigrations: Set<String> = []

    mutating func trigger(for event: HypervisorEvent) -> Trigger? {
        let uuid = event.domain.uuid
        let decision = TriggerPolicy.decide(event, incoming: incomingMigrations.contains(uuid))
        if decision.incoming { incomingMigrations.insert(uuid) } else { incomingMigrations.remove(uuid) }
        return decision.trigger
    }
}

// MARK: - Events through the coordinator

@Suite("DomainCoordinator events")
struct CoordinatorEventTests {
    /// A coordinator whose runner only records what reaches it.
    static func recording(_ submitted: Collected<String>) -> CoordinatorHarness {
        CoordinatorHarness(concurrency: 2) { work in
            submitted.append("\(work.uuid) \(work.trigger)")
            return RunReport(
                uuid: work.uuid, domain: nil, trigger: work.trigger, runID: "test", outcome: .skipped(.notManaged),
                timings: PhaseTimings())
        }
    }

    @Test("events reach the runner as the trigger policy decides", arguments: TriggerScenario.all)
    func scenario(_ scenario: TriggerScenario) async {
        let submitted = Collected<String>()
        await Self.recording(submitted).run { coordinator in
            var returned: [Trigger] = []
            var expectedRuns: [String] = []
            for event in scenario.events {
                if let trigger = await coordinator.handle(event) {
                    returned.append(trigger)
                    expectedRuns.append("\(event.domain.uuid) \(trigger)")
                }
                await coordinator.waitUntilIdle()
            }
            #expect(returned == scenario.expected)
            #expect(submitted.all == expectedRuns)
            #expect(await coordinator.submissions == scenario.expected.count)
        }
    }

    @Test("the coordinator keeps incoming migrations per domain, and forgets finished ones")
    func incoming() async {
        let submitted = Collected<String>()
        await Self.recording(submitted).run { coordinator in
            await coordinator.handle(.lifecycle(TriggerScenario.a, .startedMigrated))
            await coordinator.handle(.lifecycle(TriggerScenario.b, .startedMigrated))
            #expect(await coordinator.incomingMigrations == [TriggerScenario.a.uuid, TriggerScenario.b.uuid])
            await coordinator.handle(.lifecycle(TriggerScenario.b, .stoppedFailed))
            #expect(await coordinator.incomingMigrations == [TriggerScenario.a.uuid])
            await coordinator.handle(.lifecycle(TriggerScenario.a, .resumedMigrated))
            await coordinator.waitUntilIdle()
            #expect(await coordinator.incomingMigrations.isEmpty)
            #expect(await coordinator.recordCount == 0, "nothing is kept of unmanaged domains")
        }
    }

    @Test("the receive time of the earliest event rides with the run it starts")
    func eventTime() async {
        let times = Collected<ContinuousClock.Instant?>()
        let gate = Gate()
        let harness = CoordinatorHarness(concurrency: 1) { work in
            times.append(work.eventTime)
            await gate.wait()
            return RunReport(
                uuid: work.uuid, domain: nil, trigger: work.trigger, runID: "t", outcome: .skipped(.notManaged),
                timings: PhaseTimings())
        }
        await harness.run { coordinator in
            let t0 = ContinuousClock.now
            let a = TriggerScenario.a
            await coordinator.handle(.lifecycle(a, .resumedMigrated), receivedAt: t0)
            while times.count < 1 { await Task.yield() }
            // While it runs: two events make one follow-up, which keeps the earlier time.
            await coordinator.handle(.contextMetadataChanged(a), receivedAt: t0 + .milliseconds(5))
            await coordinator.handle(.contextMetadataChanged(a), receivedAt: t0 + .milliseconds(9))
            await coordinator.submit(a.uuid, trigger: .reconcile)
            gate.open()
            await coordinator.waitUntilIdle()
            #expect(times.all == [t0, t0 + .milliseconds(5)])
        }
    }
}
