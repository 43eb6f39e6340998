import RecontextCore
import Synchronization
import TestSupport
import Testing

/// Retries and the shutdown budget: the coordinator's timers are child tasks of its `run()`.
@Suite("DomainCoordinator retries and shutdown")
struct CoordinatorShutdownTests {
    static let transient = RunReport.Outcome.failed(phase: .build, message: "No space left on device", transient: true)

    static func report(_ work: DomainCoordinator.Work, _ outcome: RunReport.Outcome) -> RunReport {
        RunReport(
            uuid: work.uuid, domain: nil, trigger: work.trigger, runID: "r", outcome: outcome, timings: PhaseTimings())
    }

    /// Outcomes handed out in order, then `.unchanged`.
    final class Script: Sendable {
        private let outcomes: Mutex<[RunReport.Outcome]>
        init(_ outcomes: [RunReport.Outcome]) { self.outcomes = Mutex(outcomes) }
        func next() -> RunReport.Outcome {
            outcomes.withLock { $0.isEmpty ? .skipped(.notManaged) : $0.removeFirst() }
        }
    }

    @Test("transient failures run again later with a doubling, capped wait; success clears the count")
    func doublingUntilSuccess() async {
        let script = Script([Self.transient, Self.transient, Self.transient, Self.transient, Self.transient])
        let sleeper = RecordingSleeper()
        let harness = CoordinatorHarness(
            concurrency: 1, retryInitial: .seconds(5), retryMaximum: .seconds(30), sleeper: sleeper
        ) { work in Self.report(work, script.next()) }
        await harness.run { coordinator in
            await coordinator.submit("a", trigger: .started)
            // The recording sleeper returns at once: each retry runs as soon as it is scheduled.
            while harness.reports.count < 6 { await Task.yield() }
            await coordinator.waitUntilIdle()
            #expect(await coordinator.pendingRetries.isEmpty)
        }
        #expect(
            harness.finished.all.map(\.retryAfter) == [
                .seconds(5), .seconds(10), .seconds(20), .seconds(30), .seconds(30), nil,
            ])
        #expect(harness.reports.all.map(\.trigger) == [.started, .retry, .retry, .retry, .retry, .retry])
        #expect(harness.reports.all.last?.result == "skipped")
    }

    @Test("permanent failures and successes schedule nothing; a success clears a pending retry")
    func onlyTransient() async {
        let script = Script([
            .failed(phase: .resolve, message: "bad metadata", transient: false), Self.transient, .skipped(.gone),
        ])
        let gate = Gate()
        let harness = CoordinatorHarness(concurrency: 1, retryInitial: .seconds(3600)) { work in
            if work.trigger == .manual { await gate.wait() }
            return Self.report(work, script.next())
        }
        await harness.run { coordinator in
            await coordinator.submit("b", trigger: .started)
            await coordinator.waitUntilIdle()
            #expect(await coordinator.pendingRetries.isEmpty, "a permanent failure is not retried")
            await coordinator.submit("b", trigger: .reconcile)
            await coordinator.waitUntilIdle()
            #expect(await coordinator.pendingRetries == ["b"])
            await coordinator.submit("b", trigger: .manual)
            gate.open()
            await coordinator.waitUntilIdle()
            #expect(await coordinator.pendingRetries.isEmpty, "a later run that did not fail clears it")
            #expect(await coordinator.recordCount == 0)
        }
    }

    @Test("shutdown with a pending retry returns at once and cancels the timer")
    func shutdownCancelsRetries() async {
        let harness = CoordinatorHarness(concurrency: 1, retryInitial: .seconds(3600)) { work in
            Self.report(work, Self.transient)
        }
        let clock = ContinuousClock()
        let start = clock.now
        await harness.run { coordinator in
            await coordinator.submit("c", trigger: .started)
            await coordinator.waitUntilIdle()
            #expect(await coordinator.pendingRetries == ["c"])
        }
        #expect(clock.now - start < .seconds(600), "run() ended without waiting for the hour-long retry")
        #expect(harness.reports.count == 1)
    }

    @Test("a run that would outlast the shutdown budget is cancelled after it, and its domain is named")
    func budgetSpent() async {
        let cancelled = Collected<Bool>()
        let harness = CoordinatorHarness(concurrency: 2) { work in
            // A run that only ends when cancelled (a libvirt call stuck until the keepalive).
            let stuck = Gate()
            await withTaskCancellationHandler {
                await stuck.wait()
            } onCancel: {
                stuck.open()
            }
            cancelled.append(true)
            return Self.report(work, .failed(phase: .insert, message: "cancelled", transient: true))
        }
        await harness.run(budget: .milliseconds(50)) { coordinator in
            await coordinator.submit("slow", trigger: .started)
            while await coordinator.activeRuns < 1 { await Task.yield() }
        }
        #expect(cancelled.count == 1)
        #expect(await harness.coordinator.leftAtShutdown == ["slow"])
        #expect(await harness.coordinator.pendingRetries.isEmpty, "no retry is scheduled while stopping")
    }

    @Test("a run that finishes within the budget completes; nothing is cancelled")
    func budgetKept() async {
        let gate = Gate()
        let harness = CoordinatorHarness(concurrency: 1) { work in
            await gate.wait()
            return Self.report(work, Task.isCancelled ? Self.transient : .skipped(.notManaged))
        }
        await harness.run(budget: .seconds(60)) { coordinator in
            await coordinator.submit("quick", trigger: .started)
            while gate.waiting < 1 { await Task.yield() }
            await coordinator.shutdown(budget: .seconds(60))
            gate.open()
        }
        #expect(harness.reports.all.map(\.result) == ["skipped"])
        #expect(await harness.coordinator.leftAtShutdown.isEmpty)
    }
}
