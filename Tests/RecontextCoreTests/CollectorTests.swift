import Foundation
import RecontextCore
import TestSupport
import Testing

@Suite("ImageCollector")
struct CollectorTests {
    static let now = Date(timeIntervalSince1970: 1_764_000_000)
    static let old = now.addingTimeInterval(-3600)
    static let web1 = PipelineHarness.web1
    static let db1 = PipelineHarness.db1

    static func name(_ domain: DomainIdentity, _ generation: UInt64) -> String {
        ImageNaming.name(
            domain: domain, generation: generation, contentHash: String(repeating: "\(generation)", count: 12))
    }

    static func collector(_ harness: PipelineHarness, grace: Duration = .seconds(120)) -> ImageCollector {
        ImageCollector(
            hypervisor: harness.hypervisor, images: harness.store, grace: grace, logger: PipelineHarness.logger)
    }

    @Test("only images that are ours, unreferenced and older than the grace period are removed")
    func removesOnlyUnreferencedOursOld() async throws {
        let harness = PipelineHarness()
        let store = harness.store
        let liveImage = store.seed(name: Self.name(Self.web1, 3), modified: Self.old)
        let configOnly = store.seed(name: Self.name(Self.web1, 2), modified: Self.old)
        let stale = store.seed(name: Self.name(Self.web1, 1), modified: Self.old)
        let otherStale = store.seed(name: Self.name(Self.db1, 4), modified: Self.old)
        let shutOffConfig = store.seed(name: Self.name(Self.db1, 5), modified: Self.old)
        let young = store.seed(name: Self.name(Self.web1, 4), modified: Self.now.addingTimeInterval(-10))
        let stranger = store.seed(name: "install.iso", modified: Self.old)
        let almostOurs = store.seed(name: Self.web1.uuid + "-g1.iso", modified: Self.old)

        // web1 runs with generation 3 live; its persistent definition still names generation 2.
        var web1 = FakeHypervisor.Domain(
            identity: Self.web1, drives: [PipelineHarness.sata(source: liveImage)], contextMetadata: nil)
        web1.configDrives = [PipelineHarness.sata(source: configOnly)]
        harness.hypervisor.add(web1)
        // db1 is shut off; only its persistent definition names an image.
        harness.hypervisor.add(
            FakeHypervisor.Domain(
                identity: Self.db1, state: .shutOff, drives: [PipelineHarness.sata(source: shutOffConfig)],
                contextMetadata: nil))

        let removed = try await Self.collector(harness).collect(now: Self.now)

        #expect(removed.sorted() == [stale, otherStale].sorted())
        #expect(harness.store.removedPaths.sorted() == [stale, otherStale].sorted())
        let left = Set(harness.store.images.keys)
        #expect(left == [liveImage, configOnly, shutOffConfig, young, stranger, almostOurs])
        #expect(harness.hypervisor.mutatingCalls.isEmpty)
    }

    @Test("with a shared directory, unreferenced images of domains unknown here (running elsewhere) are kept")
    func sharedDirectoryKeepsOtherHostsImages() async throws {
        let harness = PipelineHarness()
        let store = harness.store
        let stale = store.seed(name: Self.name(Self.web1, 1), modified: Self.old)
        let live = store.seed(name: Self.name(Self.web1, 2), modified: Self.old)
        let elsewhere = store.seed(name: Self.name(Self.db1, 7), modified: Self.old) // db1 runs on another host
        harness.hypervisor.add(
            FakeHypervisor.Domain(
                identity: Self.web1, drives: [PipelineHarness.sata(source: live)], contextMetadata: nil))

        let shared = ImageCollector(
            hypervisor: harness.hypervisor, images: harness.store, sharedDirectory: true, logger: PipelineHarness.logger
        )
        #expect(try await shared.collect(now: Self.now) == [stale])
        #expect(Set(harness.store.images.keys) == [live, elsewhere])

        // The same directory treated as host-local: the other host's image goes too.
        #expect(try await Self.collector(harness).collect(now: Self.now) == [elsewhere])
    }

    @Test(
        "the grace period is inclusive: an image exactly as old as the grace period goes",
        arguments: [(119.0, false), (120.0, true), (121.0, true), (-5.0, false)])
    func grace(age: Double, removed: Bool) async throws {
        let harness = PipelineHarness()
        let path = harness.store.seed(name: Self.name(Self.web1, 1), modified: Self.now.addingTimeInterval(-age))
        let result = try await Self.collector(harness, grace: .seconds(120)).collect(now: Self.now)
        #expect(result == (removed ? [path] : []))
    }

    @Test("an empty directory does not ask the hypervisor")
    func emptyDirectory() async throws {
        let harness = PipelineHarness()
        let removed = try await Self.collector(harness).collect(now: Self.now)
        #expect(removed.isEmpty)
        #expect(harness.hypervisor.calls.isEmpty)
    }

    @Test("when the references cannot be listed, nothing is removed")
    func referencesUnavailable() async throws {
        let harness = PipelineHarness()
        harness.store.seed(name: Self.name(Self.web1, 1), modified: Self.old)
        harness.hypervisor.fail(.referencedSources, kind: .transient)
        await #expect(throws: HypervisorError.self) {
            try await Self.collector(harness).collect(now: Self.now)
        }
        #expect(harness.store.removalRequests.isEmpty)
    }

    @Test("a removal that fails is skipped; the others still go")
    func removalFails() async throws {
        let harness = PipelineHarness()
        let first = harness.store.seed(name: Self.name(Self.web1, 1), modified: Self.old)
        let second = harness.store.seed(name: Self.name(Self.web1, 2), modified: Self.old)
        harness.store.failRemovals(times: 1)
        let removed = try await Self.collector(harness).collect(now: Self.now)
        #expect(harness.store.removalRequests == [first, second])
        #expect(removed == [second])
        #expect(harness.store.images.keys.sorted() == [first])
    }

    @Test("after a pipeline run, the collector keeps the new image and takes only the leftovers")
    func afterPipeline() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        let leftover = harness.store.seed(name: Self.name(Self.web1, 7), modified: Self.old)
        let applied = try #require(await harness.run().applied)
        let removed = try await Self.collector(harness, grace: .zero).collect(now: Self.now.addingTimeInterval(86_400))
        #expect(removed == [leftover])
        #expect(harness.store.images.keys.sorted() == [applied.imagePath])
    }
}
