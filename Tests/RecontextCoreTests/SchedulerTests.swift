import Foundation
import Synchronization
import TestSupport
import Testing

@testable import RecontextCore

// MARK: - Helpers

/// A scheduler over a real pipeline on the fakes, collecting every report.
struct SchedulerHarness {
    let pipeline: PipelineHarness
    let scheduler: DomainScheduler
    let reports = Collected<RunReport>()
    let runs = RunCounter()

    init(concurrency: Int, domains: Int = 1) {
        let pipeline = PipelineHarness()
        for index in 0..<domains { pipeline.addDomain(Self.domain(index)) }
        let runner = pipeline.pipeline()
        let reports = self.reports
        let runs = self.runs
        self.pipeline = pipeline
        self.scheduler = DomainScheduler(
            concurrency: concurrency,
            runner: { uuid, trigger in
                runs.begin(uuid)
                defer { runs.end(uuid) }
                return await runner.run(uuid: uuid, trigger: trigger)
            },
            onReport: { reports.append($0) })
    }

    var hypervisor: FakeHypervisor { pipeline.hypervisor }

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

@Suite("DomainScheduler")
struct SchedulerTests {
    @Test("many submissions while a run is in progress make exactly one follow-up run, with the latest trigger")
    func coalescesWhileRunning() async throws {
        let harness = SchedulerHarness(concurrency: 4)
        let uuid = SchedulerHarness.domain(0).uuid
        harness.hypervisor.hold(.snapshot)
        await harness.scheduler.submit(uuid, trigger: .started)
        await harness.hypervisor.waitUntilHeld(1)
        for _ in 0..<10 { await harness.scheduler.submit(uuid, trigger: .metadataChanged) }
        await harness.scheduler.submit(uuid, trigger: .manual)
        #expect(await harness.scheduler.activeRuns == 1)
        #expect(await harness.scheduler.queueDepth == 0)

        harness.hypervisor.release()
        await harness.scheduler.waitUntilIdle()

        let reports = harness.reports.all
        #expect(reports.map(\.trigger) == [.started, .manual])
        #expect(reports.map(\.result) == ["applied", "unchanged"])
        #expect(harness.hypervisor.calls(.snapshot).count == 2)
        #expect(await harness.scheduler.submissions == 12)
        #expect(await harness.scheduler.coalesced == 10)
        #expect(harness.runs.maxPerDomain == 1)
    }

    @Test("a follow-up run sees the metadata changed during the run before it")
    func followUpSeesChange() async throws {
        let harness = SchedulerHarness(concurrency: 2)
        let uuid = SchedulerHarness.domain(0).uuid
        harness.hypervisor.hold(.changeMedia)
        await harness.scheduler.submit(uuid, trigger: .started)
        await harness.hypervisor.waitUntilHeld(1)
        harness.hypervisor.update(uuid) { $0.contextMetadata = PipelineHarness.metadata(role: "db") }
        await harness.scheduler.submit(uuid, trigger: .metadataChanged)
        harness.hypervisor.release()
        await harness.scheduler.waitUntilIdle()

        let generations = harness.reports.all.compactMap(\.applied?.generation)
        #expect(generations == [1, 2])
    }

    @Test("submissions while a domain waits in the queue join the queued run")
    func joinsQueued() async throws {
        let harness = SchedulerHarness(concurrency: 1, domains: 3)
        let (a, b, c) = (
            SchedulerHarness.domain(0).uuid, SchedulerHarness.domain(1).uuid, SchedulerHarness.domain(2).uuid
        )
        harness.hypervisor.hold(.snapshot)
        await harness.scheduler.submit(a, trigger: .started)
        await harness.hypervisor.waitUntilHeld(1)
        await harness.scheduler.submit(b, trigger: .migratedIn)
        for _ in 0..<5 { await harness.scheduler.submit(b, trigger: .metadataChanged) }
        await harness.scheduler.submit(c, trigger: .reconcile)
        #expect(await harness.scheduler.queueDepth == 2)
        #expect(await harness.scheduler.activeRuns == 1)

        harness.hypervisor.release()
        await harness.scheduler.waitUntilIdle()

        let reports = harness.reports.all
        #expect(reports.map(\.uuid) == [a, b, c], "FIFO, one run each")
        #expect(reports.map(\.trigger) == [.started, .migratedIn, .reconcile])
        #expect(await harness.scheduler.coalesced == 5)
        #expect(harness.hypervisor.calls(.snapshot).count == 3)
    }

    @Test("runs of one domain never overlap, under bursts of submissions to several domains")
    func perDomainOrdering() async throws {
        let harness = SchedulerHarness(concurrency: 3, domains: 5)
        harness.hypervisor.delay(by: .milliseconds(1))
        for round in 0..<20 {
            for index in 0..<5 {
                await harness.scheduler.submit(
                    SchedulerHarness.domain(index).uuid, trigger: round == 0 ? .started : .reconcile)
            }
            if round % 4 == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        await harness.scheduler.waitUntilIdle()

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
        let submissions = await harness.scheduler.submissions
        let coalesced = await harness.scheduler.coalesced
        #expect(submissions == 100)
        #expect(reports.count == submissions - coalesced, "every submission is a run or coalesced")
    }

    @Test("at most `concurrency` domains run at once, out of 20", arguments: [1, 4, 7])
    func boundedConcurrency(concurrency: Int) async throws {
        let harness = SchedulerHarness(concurrency: concurrency, domains: 20)
        harness.hypervisor.hold(.snapshot)
        for index in 0..<20 { await harness.scheduler.submit(SchedulerHarness.domain(index).uuid, trigger: .reconcile) }
        await harness.hypervisor.waitUntilHeld(concurrency)
        #expect(await harness.scheduler.activeRuns == concurrency)
        #expect(await harness.scheduler.queueDepth == 20 - concurrency)
        #expect(harness.hypervisor.heldCount == concurrency)

        harness.hypervisor.release()
        await harness.scheduler.waitUntilIdle()

        #expect(harness.hypervisor.maxConcurrentCalls == concurrency)
        #expect(harness.hypervisor.maxConcurrentCallsPerDomain == 1)
        #expect(harness.runs.maxTotal == concurrency)
        let reports = harness.reports.all
        #expect(reports.count == 20)
        #expect(reports.allSatisfy { $0.applied?.generation == 1 })
        #expect(Set(reports.map(\.uuid)).count == 20)
        #expect(await harness.scheduler.isIdle)
    }

    @Test("drain waits for running work, drops queued work and follow-ups, and refuses new work")
    func drain() async throws {
        let harness = SchedulerHarness(concurrency: 1, domains: 4)
        let uuids = (0..<4).map { SchedulerHarness.domain($0).uuid }
        harness.hypervisor.hold(.changeMedia)
        await harness.scheduler.submit(uuids[0], trigger: .started)
        await harness.hypervisor.waitUntilHeld(1)
        await harness.scheduler.submit(uuids[0], trigger: .metadataChanged) // a follow-up
        await harness.scheduler.submit(uuids[1], trigger: .started)
        await harness.scheduler.submit(uuids[2], trigger: .started)
        #expect(await harness.scheduler.queueDepth == 2)

        let drained = Collected<Bool>()
        let scheduler = harness.scheduler
        let draining = Task {
            await scheduler.drain()
            drained.append(true)
        }
        while await harness.scheduler.queueDepth > 0 { await Task.yield() }
        await harness.scheduler.submit(uuids[3], trigger: .started)
        #expect(await harness.scheduler.queueDepth == 0, "no new work while draining")
        #expect(drained.count == 0, "the run of \(uuids[0]) is still in progress")

        harness.hypervisor.release()
        await draining.value

        let reports = harness.reports.all
        #expect(reports.map(\.uuid) == [uuids[0]], "the running run finished before drain returned")
        #expect(reports.first?.applied?.generation == 1, "a running swap is completed, not cancelled")
        #expect(harness.hypervisor.calls(.snapshot).map(\.uuid) == [uuids[0]])
        #expect(await harness.scheduler.isIdle)

        await harness.scheduler.submit(uuids[1], trigger: .manual)
        #expect(await harness.scheduler.isIdle, "a drained scheduler takes no work")
        await harness.scheduler.waitUntilIdle()
        #expect(harness.reports.count == 1)
    }

    @Test("waitUntilIdle returns at once when nothing runs, and drain of an idle scheduler too")
    func idle() async {
        let harness = SchedulerHarness(concurrency: 2)
        await harness.scheduler.waitUntilIdle()
        await harness.scheduler.drain()
        #expect(await harness.scheduler.isIdle)
        #expect(harness.reports.count == 0)
    }
}
