import Foundation
import Testing

@testable import RecontextCore

/// A run interrupted after the live media change (recontextd killed, or the config update and the
/// record both failed): the next run finds the desired image attached live and must bring the
/// persistent definition along, instead of only recording the state (issue 6, item 2).
@Suite("Pipeline: recovery from a run interrupted after the live swap")
struct PipelineInterruptedRunTests {
    @Test("the next run points the persistent definition at the attached image, without building again")
    func configCaughtUp() async throws {
        let harness = PipelineHarness()
        harness.addDomain(metadata: PipelineHarness.metadata(role: "web"))
        let first = try #require(await harness.run().applied)
        harness.hypervisor.update(PipelineHarness.web1.uuid) {
            $0.contextMetadata = PipelineHarness.metadata(role: "db")
        }
        // What a SIGKILL right after the live change leaves: live has the new image, the
        // persistent definition and the record the old one.
        harness.hypervisor.fail(.changeMedia, scope: .config, times: nil, kind: .permanent)
        harness.hypervisor.fail(.setAppliedMetadata, times: nil, kind: .permanent)
        let second = try #require(await harness.run(trigger: .metadataChanged).applied)
        let interrupted = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(interrupted.liveDrive("sda")?.source == second.imagePath)
        #expect(interrupted.configDrive("sda")?.source == first.imagePath)

        harness.hypervisor.clearFailures()
        let written = harness.store.writtenNames.count
        let third = await harness.run(trigger: .reconcile)
        guard case .unchanged(let state) = third.outcome else {
            Issue.record("expected unchanged, got \(third.outcome)")
            return
        }
        #expect(state.imagePath == second.imagePath)
        #expect(harness.store.writtenNames.count == written, "nothing built again")
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.configDrive("sda")?.source == second.imagePath, "the persistent definition caught up")
        #expect(domain.liveAppliedState?.imagePath == second.imagePath)
        #expect(third.warnings.isEmpty, "\(third.warnings)")
    }
}
