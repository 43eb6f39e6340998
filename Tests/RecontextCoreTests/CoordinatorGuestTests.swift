import Foundation
import Logging
import Synchronization
import Testing

@testable import RecontextCore

@Suite("DomainCoordinator: the guest's acknowledgements")
struct CoordinatorGuestTests {
    static let hash = String(repeating: "ab", count: 32)

    static func state(_ generation: UInt64, guest: GuestApplied? = nil) -> AppliedState {
        AppliedState(
            generation: generation, contentHash: hash, host: "hv-b", time: Date(), imagePath: "/i/\(generation).iso",
            format: .noCloud, guest: guest)
    }

    static func ack(_ generation: UInt64) -> GuestAck {
        GuestAck(generation: generation, result: .ok, contentHash: hash, host: "hv-b", trigger: "notify", hooks: [])
    }

    /// A coordinator whose runs report `outcomes` in turn.
    static func coordinator(_ outcomes: [RunReport.Outcome]) -> DomainCoordinator {
        let queue = OutcomeQueue(outcomes)
        return DomainCoordinator(
            settings: .init(concurrency: 2), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
            runner: { work in
                RunReport(
                    uuid: work.uuid, domain: nil, trigger: work.trigger, runID: "r", outcome: queue.next(),
                    timings: PhaseTimings())
            })
    }

    @Test("an ack counts only for its own domain, and only for what was inserted there")
    func ownDomainOnly() async {
        let coordinator = Self.coordinator([.applied(Self.state(3)), .applied(Self.state(7))])
        await withDiscardingTaskGroup { group in
            group.addTask { await coordinator.run() }
            await coordinator.submit("a", trigger: .started)
            await coordinator.waitUntilIdle()
            await coordinator.submit("b", trigger: .started)
            await coordinator.waitUntilIdle()
            // b's guest claims a's generation: rejected, and a's record is untouched.
            let (claim, _) = await coordinator.acknowledge("b", ack: Self.ack(3), at: Date())
            #expect(claim == .stale)
            let (never, _) = await coordinator.acknowledge("c", ack: Self.ack(3), at: Date())
            #expect(never.label == "rejected")
            let (accepted, record) = await coordinator.acknowledge("a", ack: Self.ack(3), at: Date())
            #expect(accepted == .accepted && record?.guest?.generation == 3)
            #expect(await coordinator.applied(of: "b")?.guest == nil)
            #expect(await coordinator.laggingGuests(among: ["a", "b"]) == 1)
            await coordinator.shutdown(budget: .seconds(1))
        }
    }

    @Test("a run that ends after an ack keeps the ack (the newer one wins)")
    func runKeepsNewerAck() async {
        let old = GuestApplied(generation: 2, result: .ok, time: Date(timeIntervalSince1970: 1))
        let coordinator = Self.coordinator([.applied(Self.state(3)), .unchanged(Self.state(3, guest: old))])
        await withDiscardingTaskGroup { group in
            group.addTask { await coordinator.run() }
            await coordinator.submit("a", trigger: .started)
            await coordinator.waitUntilIdle()
            _ = await coordinator.acknowledge("a", ack: Self.ack(3), at: Date())
            await coordinator.submit("a", trigger: .reconcile)
            await coordinator.waitUntilIdle()
            #expect(await coordinator.applied(of: "a")?.guest?.generation == 3)
            await coordinator.shutdown(budget: .seconds(1))
        }
    }
}

/// Outcomes handed out in order (the last one repeats).
final class OutcomeQueue: Sendable {
    private let outcomes: Mutex<[RunReport.Outcome]>
    init(_ outcomes: [RunReport.Outcome]) { self.outcomes = Mutex(outcomes) }
    func next() -> RunReport.Outcome {
        outcomes.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] }
    }
}
