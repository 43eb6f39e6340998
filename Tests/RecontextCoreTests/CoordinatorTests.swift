import Foundation
import Synchronization
import TestSupport
import Testing

@testable import RecontextCore

// MARK: - Helpers

/// A coordinator that the test runs: ``run(budget:_:)`` starts it, runs the body, then shuts it
/// down and waits for ``DomainCoordinator/run()`` to return.
struct CoordinatorHarness {
    let coordinator: DomainCoordinator
    let reports = Collected<RunReport>()
    let finished = Collected<DomainCoordinator.Finished>()

    init(
        concurrency: Int, retryInitial: Duration = .seconds(5), retryMaximum: Duration = .seconds(300),
        sleeper: any Sleeper = ClockSleeper(), runner: @escaping DomainCoordinator.Runner
    ) {
        let reports = self.reports
        let finished = self.finished
        coordinator = DomainCoordinator(
            settings: .init(concurrency: concurrency, retryInitial: retryInitial, retryMaximum: retryMaximum),
            sleeper: sleeper, logger: PipelineHarness.logger, runner: runner,
            onFinished: {
                reports.append($0.report)
                finished.append($0)
            })
    }

    /// Runs the coordinator around `body`; shuts it down with `budget` after it.
    func run(budget: Duration = .seconds(60), _ body: (DomainCoordinator) async -> Void) async {
        let coordinator = self.coordinator
        await withDiscardingTaskGroup { group in
            group.addTask { await coordinator.run() }
            await body(coordinator)
            await coordinator.shutdown(budget: budget)
        }
    }
}

/// A coordinator over a real pipeline on the fakes, collecting every report.
struct SchedulerHarness {
    let pipeline: PipelineHarness
    let harness: CoordinatorHarness
    let runs = RunCounter()

    init(concurrency: Int, domains: Int = 1) {
        let pipeline = PipelineHarness()
        for index in 0..<domains { pipeline.addDomain(Self.domain(index)) }
        let runner = pipeline.pipeline()
        let runs = self.runs
        self.pipeline = pipeline
        self.harness = CoordinatorHarness(concurrency: concurrency) { work in
            runs.begin(work.uuid)
            defer { runs.end(work.uuid) }
            return await runner.run(uuid: work.uuid, trigger: work.trigger)
        }
    }

    var hypervisor: FakeHypervisor { pipeline.hypervisor }
    var reports: Collected<RunReport> { harness.reports }

    /// Runs the coordinator around `body`.
    func run(_ body: (DomainCoordinator) async -> Void) async {
        await harness.run(body)
    }

    /// Domain number `index`: `vm<index>`, with a UUID ending in the index.
    static func domain(_ index: Int) -> DomainIdentity {
        DomainIdentity(name: "vm\(index)", uuid: "00000000-0000-4000-8000-" + String(format: "%012x", index))
    }
}

/// Counts pipeline runs in flight, per domain and overall, and keeps the maxima.
final class RunCounter: Sendable {
    private struct Counts {
        var current: [String: Int] = [:]
        var maxPerDomain = 0
        var total = 0
        var maxTotal = 0
    }
    private let counts = Mutex(Counts())

    func begin(_ uuid: String) {
        counts.withLock {
            $0.current[uuid, default: 0] += 1
            $0.total += 1
            $0.maxPerDomain = max($0.maxPerDomain, $0.current[uuid]!)
            $0.maxTotal = max($0.maxTotal, $0.total)
        }
    }

    func end(_ uuid: String) {
        counts.withLock {
            $0.current[uuid, default: 1] -= 1
            $0.total -= 1
        }
    }

    /// The most runs of one domain at once.
    var maxPerDomain: Int { counts.withLock { $0.maxPerDomain } }
    /// The most runs at once.
    var maxTotal: Int { counts.withLock { $0.maxTotal } }
}

// MARK: - Tests

@Suite("DomainCoordinator runs")
struct CoordinatorRunTests {
    @Test("many submissions while a run is in progress make exactly one follow-up run, with the latest trigger")
    func coalescesWhileRunning() async throws {
        let harness = SchedulerHarness(concurrency: 4)
        await harness.run { scheduler in
            let uuid = SchedulerHarness.domain(0).uuid
            harness.hypervisor.hold(.snapshot)
            await scheduler.submit(uuid, trigger: .started)
            await harness.hypervisor.waitUntilHeld(1)
            for _ in 0..<10 { await scheduler.submit(uuid, trigger: .metadataChanged) }
            await scheduler.submit(uuid, trigger: .manual)
            #expect(await scheduler.activeRuns == 1)
            #expect(await scheduler.queueDepth == 0)

            harness.hypervisor.release()
            await scheduler.waitUntilIdle()

            let reports = harness.reports.all
            #expect(reports.map(\.trigger) == [.started, .manual])
            #expect(reports.map(\.result) == ["applied", "unchanged"])
            #expect(harness.hypervisor.calls(.snapshot).count == 2)
            #expect(await scheduler.submissions == 12)
            #expect(await scheduler.coalesced == 10)
            #expect(harness.runs.maxPerDomain == 1)
        }
    }

    @Test("a follow-up run sees the metadata changed during the run before it")
    func followUpSeesChange() async throws {
        let harness = SchedulerHarness(concurrency: 2)
        await harness.run { scheduler in
            let uuid = SchedulerHarness.domain(0).uuid
            harness.hypervisor.hold(.changeMedia)
            await scheduler.submit(uuid, trigger: .started)
            await harness.hypervisor.waitUntilHeld(1)
            harness.hypervisor.update(uuid) { $0.contextMetadata = PipelineHarness.metadata(role: "db") }
            await scheduler.submit(uuid, trigger: .metadataChanged)
            harness.hypervisor.release()
            await scheduler.waitUntilIdle()

            let generations = harness.reports.all.compactMap(\.applied?.generation)
            #expect(generations == [1, 2])
        }
    }

    @Test("submissions while a domain waits in the queue join the queued run")
    func joinsQueued() async throws {
        let harness = SchedulerHarness(concurrency: 1, domains: 3)
        await harness.run { scheduler in
            let (a, b, c) = (
                SchedulerHarness.domain(0).uuid, SchedulerHarness.domain(1).uuid, SchedulerHarness.domain(2).uuid
            )
            harness.hypervisor.hold(.snapshot)
            await scheduler.submit(a, trigger: .started)
            await harness.hypervisor.waitUntilHeld(1)
            await scheduler.submit(b, trigger: .migratedIn)
            for _ in 0..<5 { await scheduler.submit(b, trigger: .metadataChanged) }
            await scheduler.submit(c, trigger: .reconcile)
            #expect(await scheduler.queueDepth == 2)
            #expect(await scheduler.activeRuns == 1)

            harness.hypervisor.release()
            await scheduler.waitUntilIdle()

            let reports = harness.reports.all
            #expect(reports.map(\.uuid) == [a, b, c], "FIFO, one run each")
            #expect(reports.map(\.trigger) == [.started, .migratedIn, .reconcile])
            #expect(await scheduler.coalesced == 5)
            #expect(harness.hypervisor.calls(.snapshot).count == 3)
        }
    }

    @Test("runs of one domain never overlap, under bursts of submissions to several domains")
    func perDomainOrdering() async throws {
        let harness = SchedulerHarness(concurrency: 3, domains: 5)
        await harness.run { scheduler in
            harness.hypervisor.delay(by: .milliseconds(1))
            for round in 0..<20 {
                for index in 0..<5 {
                    await scheduler.submit(
                        SchedulerHarness.domain(index).uuid, trigger: round == 0 ? .started : .reconcile)
                }
                // A sleep on purpose: paces the storm, so that later bursts meet runs in flight.
                if round % 4 == 0 { try? await Task.sleep(for: .milliseconds(2)) }
            }
            await scheduler.waitUntilIdle()

            #expect(harness.runs.maxPerDomain == 1)
            #expect(harness.hypervisor.maxConcurrentCallsPerDomain == 1)
            #expect(harness.runs.maxTotal <= 3)
            #expect(harness.hypervisor.maxConcurrentCalls <= 3)
            let reports = harness.reports.all
            for index in 0..<5 {
                let mine = reports.filter { $0.uuid == SchedulerHarness.domain(index).uuid }
                #expect(mine.first?.applied?.generation == 1)
                #expect(mine.dropFirst().allSatisfy { $0.result == "unchanged" })
                #expect((1...20).contains(mine.count))
            }
            let submissions = await scheduler.submissions
            let coalesced = await scheduler.coalesced
            #expect(submissions == 100)
            #expect(reports.count == submissions - coalesced, "every submission is a run or coalesced")
        }
    }

    @Test("at most `concurrency` domains run at once, out of 20", arguments: [1, 4, 7])
    func boundedConcurrency(concurrency: Int) async throws {
        let harness = SchedulerHarness(concurrency: concurrency, domains: 20)
        await harness.run { scheduler in
            harness.hypervisor.hold(.snapshot)
            for index in 0..<20 { await scheduler.submit(SchedulerHarness.domain(index).uuid, trigger: .reconcile) }
            await harness.hypervisor.waitUntilHeld(concurrency)
            #expect(await scheduler.activeRuns == concurrency)
            #expect(await scheduler.queueDepth == 20 - concurrency)
            #expect(harness.hypervisor.heldCount == concurrency)

            harness.hypervisor.release()
            await scheduler.waitUntilIdle()

            #expect(harness.hypervisor.maxConcurrentCalls == concurrency)
            #expect(harness.hypervisor.maxConcurrentCallsPerDomain == 1)
            #expect(harness.runs.maxTotal == concurrency)
            let reports = harness.reports.all
            #expect(reports.count == 20)
            #expect(reports.allSatisfy { $0.applied?.generation == 1 })
            #expect(Set(reports.map(\.uuid)).count == 20)
            #expect(await scheduler.isIdle)
        }
    }

    @Test("shutdown waits for running work, drops queued work and follow-ups, and refuses new work")
    func drain() async throws {
        let harness = SchedulerHarness(concurrency: 1, domains: 4)
        let uuids = (0..<4).map { SchedulerHarness.domain($0).uuid }
        let coordinator = harness.harness.coordinator
        harness.hypervisor.hold(.changeMedia)
        await withDiscardingTaskGroup { group in
            group.addTask { await coordinator.run() }
            await coordinator.submit(uuids[0], trigger: .started)
            await harness.hypervisor.waitUntilHeld(1)
            await coordinator.submit(uuids[0], trigger: .metadataChanged) // a follow-up
            await coordinator.submit(uuids[1], trigger: .started)
            await coordinator.submit(uuids[2], trigger: .started)
            #expect(await coordinator.queueDepth == 2)

            await coordinator.shutdown(budget: .seconds(60))
            #expect(await coordinator.queueDepth == 0, "queued work is dropped")
            await coordinator.submit(uuids[3], trigger: .started)
            #expect(await coordinator.queueDepth == 0, "no new work while draining")
            #expect(await coordinator.activeRuns == 1, "the run of \(uuids[0]) is still in progress")
            harness.hypervisor.release()
        }
        let reports = harness.reports.all
        #expect(reports.map(\.uuid) == [uuids[0]], "the running run finished before run() returned")
        #expect(reports.first?.applied?.generation == 1, "a running swap is completed, not cancelled")
        #expect(harness.hypervisor.calls(.snapshot).map(\.uuid) == [uuids[0]])
        #expect(await coordinator.isIdle)
        #expect(await coordinator.leftAtShutdown.isEmpty)
    }

    @Test("waitUntilIdle returns at once when nothing runs, and shutdown of an idle coordinator too")
    func idle() async {
        let harness = SchedulerHarness(concurrency: 2)
        await harness.run { scheduler in
            await scheduler.waitUntilIdle()
        }
        #expect(await harness.harness.coordinator.isIdle)
        #expect(harness.reports.count == 0)
    }
}
