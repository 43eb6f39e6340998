import RecontextCore
import Synchronization
import TestSupport
import Testing

@Suite("RetryLater")
struct RetryLaterTests {
    final class Submissions: Sendable {
        let uuids = Mutex<[String]>([])
    }

    static func report(_ uuid: String, _ outcome: RunReport.Outcome) -> RunReport {
        RunReport(uuid: uuid, domain: nil, trigger: .retry, runID: "r", outcome: outcome, timings: PhaseTimings())
    }

    static let transient = RunReport.Outcome.failed(phase: .build, message: "No space left on device", transient: true)

    @Test("transient failures are retried later with a doubling, capped wait; success clears the state")
    func doublingUntilSuccess() async throws {
        let submissions = Submissions()
        let retry = RetryLater(initial: .seconds(5), maximum: .seconds(30), sleeper: RecordingSleeper()) { uuid in
            submissions.uuids.withLock { $0.append(uuid) }
        }
        var delays: [Duration] = []
        for _ in 0..<5 {
            let delay = try #require(await retry.handle(Self.report("a", Self.transient)))
            delays.append(delay)
            // The recording sleeper returns at once: wait for the submission.
            while await !retry.pendingDomains.isEmpty { await Task.yield() }
        }
        #expect(delays == [.seconds(5), .seconds(10), .seconds(20), .seconds(30), .seconds(30)])
        #expect(submissions.uuids.withLock { $0 } == ["a", "a", "a", "a", "a"])

        #expect(await retry.handle(Self.report("a", .skipped(.gone))) == nil)
        #expect(await retry.handle(Self.report("a", Self.transient)) == .seconds(5), "the count starts again")
    }

    @Test("permanent failures and successes schedule nothing; one waiting retry per domain")
    func onlyTransient() async throws {
        let sleeper = RecordingSleeper()
        let retry = RetryLater(initial: .seconds(5), sleeper: sleeper) { _ in }
        #expect(
            await retry.handle(Self.report("b", .failed(phase: .resolve, message: "bad metadata", transient: false)))
                == nil)
        #expect(await retry.pendingDomains.isEmpty)
        await retry.cancelAll()
    }
}
