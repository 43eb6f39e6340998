import Foundation
import Logging
import RecontextCore
import Synchronization
import TestSupport
import Testing

// MARK: - Harness

/// A pipeline over the in-memory fakes, with the inputs the pipeline tests share.
struct PipelineHarness {
    static let directory = "/var/lib/recontextd/images"
    static let web1 = DomainIdentity(name: "web1", uuid: "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab")
    static let db1 = DomainIdentity(name: "db1", uuid: "11111111-2222-4333-8444-555555555555")
    /// attempts 5, initial 200 ms, max 1 s: waits of 200, 400, 800, 1000 ms.
    static let retry = RetryPolicy(attempts: 5, initialBackoff: .milliseconds(200), maxBackoff: .seconds(1))
    static let logger = Logger(label: "recontextd.test") { _ in SwiftLogNoOpLogHandler() }

    let hypervisor = FakeHypervisor()
    let store = FakeImageStore(directory: PipelineHarness.directory)
    let sleeper = RecordingSleeper()
    var settings: PipelineSettings

    init(
        host: String = "hv1", deviceMode: DeviceMode = .mediaChange,
        managedPolicy: ManagedDomains = .optIn, defaultTarget: String? = nil,
        retry: RetryPolicy = PipelineHarness.retry
    ) {
        settings = PipelineSettings(
            host: HostFacts(name: host, variables: ["zone": "rack-1"]), managedPolicy: managedPolicy,
            deviceMode: deviceMode, defaultTarget: defaultTarget, retry: retry)
    }

    /// The pipeline, optionally as seen from another host (same hypervisor and store).
    func pipeline(host: String? = nil) -> ContextPipeline {
        var settings = self.settings
        if let host { settings.host.name = host }
        return ContextPipeline(
            hypervisor: hypervisor, images: store, settings: settings, sleeper: sleeper, logger: Self.logger)
    }

    /// Runs the pipeline once for `domain`.
    func run(_ domain: DomainIdentity = web1, trigger: Trigger = .started, host: String? = nil) async -> RunReport {
        await pipeline(host: host).run(uuid: domain.uuid, trigger: trigger)
    }

    /// Adds a domain with one drive.
    @discardableResult
    func addDomain(
        _ identity: DomainIdentity = web1, state: DomainSnapshot.RunState = .running, persistent: Bool = true,
        drives: [ContextDrive] = [PipelineHarness.sata()], metadata: String? = PipelineHarness.metadata(),
        applied: String? = nil
    ) -> FakeHypervisor.Domain {
        let domain = FakeHypervisor.Domain(
            identity: identity, state: state, isPersistent: persistent, drives: drives, contextMetadata: metadata,
            applied: applied)
        hypervisor.add(domain)
        return domain
    }

    /// Context metadata as libvirt returns it, with optional root attributes and variables.
    static func metadata(_ attributes: String = "", role: String? = nil) -> String {
        let root =
            "<recontext:context xmlns:recontext=\"\(ContextMetadata.namespaceURI)\"\(attributes.isEmpty ? "" : " " + attributes)"
        guard let role else { return root + "/>" }
        return root + "><recontext:var name=\"role\">\(role)</recontext:var></recontext:context>"
    }

    /// A SATA CD-ROM.
    static func sata(_ target: String = "sda", source: String? = nil) -> ContextDrive {
        ContextDrive(target: target, bus: "sata", source: source, handle: ["alias": "sata0-0-0"])
    }

    /// A virtio-scsi CD-ROM.
    static func scsi(_ target: String = "sdb", source: String? = nil) -> ContextDrive {
        ContextDrive(target: target, bus: "scsi", source: source, handle: ["alias": "scsi0-0-0-1"])
    }

    /// The path an image of `domain` would have in the directory.
    static func imagePath(_ domain: DomainIdentity = web1, generation: UInt64, hash: String = "aaaaaaaaaaaaaaaa")
        -> String
    {
        directory + "/" + ImageNaming.name(domain: domain, generation: generation, contentHash: hash)
    }

    /// Puts a generation-1 image from an earlier run (different content) into the store and
    /// attaches it to web1 with its applied record; returns its path.
    @discardableResult
    func addDomainWithPreviousImage(
        persistent: Bool = true, drive: ContextDrive = PipelineHarness.sata(), host: String = "hv1"
    ) -> String {
        let path = store.seed(name: ImageNaming.name(domain: Self.web1, generation: 1, contentHash: "aaaaaaaaaaaaaaaa"))
        var drive = drive
        drive.source = path
        let applied = AppliedState(
            generation: 1, contentHash: String(repeating: "a", count: 64), host: host,
            time: Date(timeIntervalSince1970: 1_700_000_000), imagePath: path, format: .noCloud)
        addDomain(drives: [drive], applied: AppliedMetadata.serialize(applied))
        return path
    }
}

extension RunReport {
    /// The applied state, when the run applied a new image.
    var applied: AppliedState? {
        if case .applied(let state) = outcome { state } else { nil }
    }

    /// Phase, message and transience, when the run failed.
    var failure: (phase: Phase, message: String, transient: Bool)? {
        if case .failed(let phase, let message, let transient) = outcome { (phase, message, transient) } else { nil }
    }
}

extension FakeHypervisor.Domain {
    /// The applied record of the running domain, parsed.
    var liveAppliedState: AppliedState? { liveApplied.flatMap { try? AppliedMetadata.parse($0) } }
    /// The applied record of the persistent definition, parsed.
    var configAppliedState: AppliedState? { configApplied.flatMap { try? AppliedMetadata.parse($0) } }
}

// MARK: - Applying

@Suite("Pipeline: applying and skipping")
struct PipelineTests {
    @Test("a first run builds generation 1 and attaches it to the live and persistent definitions")
    func firstRun() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        let report = await harness.run()

        let applied = try #require(report.applied, "\(report.outcome)")
        #expect(applied.generation == 1)
        #expect(applied.host == "hv1")
        let name = ImageNaming.name(domain: PipelineHarness.web1, generation: 1, contentHash: applied.contentHash)
        #expect(applied.imagePath == PipelineHarness.directory + "/" + name)
        #expect(harness.store.writtenNames == [name])
        let image = try #require(harness.store.image(at: applied.imagePath))
        #expect(image.generation == 1)
        #expect(image.context?.contentHash == applied.contentHash)

        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == applied.imagePath)
        #expect(domain.configDrive("sda")?.source == applied.imagePath)
        #expect(domain.liveAppliedState == applied)
        #expect(domain.configAppliedState == applied)
        #expect(report.warnings.isEmpty)
        #expect(report.domain == PipelineHarness.web1)
        #expect(report.trigger == .started)

        #expect(
            harness.hypervisor.calls.map(\.description) == [
                "snapshot",
                "changeMedia(live) sda <- \(applied.imagePath)",
                "changeMedia(config) sda <- \(applied.imagePath)",
                "setAppliedMetadata(live+config)",
            ])
        #expect(harness.store.removalRequests.isEmpty, "there was no old image")
        #expect(harness.sleeper.durations.isEmpty)
    }

    @Test("a paused domain (arrived paused) is updated like a running one")
    func pausedDomain() async throws {
        let harness = PipelineHarness()
        harness.addDomain(state: .paused)
        let report = await harness.run(trigger: .arrivedPaused)
        #expect(report.applied?.generation == 1)
    }

    @Test("a second run with the same content is unchanged: no device calls, no image written")
    func skipUnchanged() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        let first = try #require(await harness.run().applied)
        harness.hypervisor.resetCalls()

        let second = await harness.run(trigger: .migratedIn)
        #expect(second.outcome == .unchanged(first))
        // A persistent domain: its persistent definition is read too (it must name the same image).
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot, .persistentDrives])
        #expect(harness.store.writtenNames.count == 1)
        #expect(harness.store.removalRequests.isEmpty)
    }

    @Test("the same content on another host is a new generation with a new file name")
    func otherHostIsNewGeneration() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        let first = try #require(await harness.run(host: "hv1").applied)
        let second = try #require(await harness.run(trigger: .migratedIn, host: "hv2").applied)

        #expect(second.generation == 2)
        #expect(second.host == "hv2")
        #expect(second.imagePath != first.imagePath)
        #expect(second.imagePath.contains("-g2-"))
        #expect(harness.store.removedPaths == [first.imagePath], "the old image is ours and no longer attached")
        #expect(harness.store.images.keys.sorted() == [second.imagePath])
    }

    @Test("each change of the metadata is a new generation under a new name", arguments: [2, 3, 5])
    func generations(changes: Int) async throws {
        let harness = PipelineHarness()
        harness.addDomain(metadata: PipelineHarness.metadata(role: "role0"))
        var paths: [String] = []
        for index in 0..<changes {
            harness.hypervisor.update(PipelineHarness.web1.uuid) {
                $0.contextMetadata = PipelineHarness.metadata(role: "role\(index)")
            }
            let applied = try #require(await harness.run(trigger: .metadataChanged).applied)
            #expect(applied.generation == UInt64(index + 1))
            #expect(
                ImageNaming.parse(URL(fileURLWithPath: applied.imagePath).lastPathComponent)?.generation
                    == UInt64(index + 1))
            #expect(harness.store.image(at: applied.imagePath)?.generation == UInt64(index + 1))
            paths.append(applied.imagePath)
        }
        #expect(Set(paths).count == changes, "a new file name per generation")
        #expect(harness.store.removedPaths == Array(paths.dropLast()))
        #expect(harness.store.images.keys.sorted() == [paths.last!])
    }

    @Test("a persistent domain gets live and config updated, a transient one only live", arguments: [true, false])
    func scopes(persistent: Bool) async throws {
        let harness = PipelineHarness()
        harness.addDomain(persistent: persistent)
        let report = await harness.run()
        let applied = try #require(report.applied)

        let changes = harness.hypervisor.calls(.changeMedia)
        let metadata = harness.hypervisor.calls(.setAppliedMetadata)
        if persistent {
            #expect(changes.map(\.scope) == [.live, .config])
            #expect(metadata.map(\.scope) == [[.live, .config]])
        } else {
            #expect(changes.map(\.scope) == [.live])
            #expect(metadata.map(\.scope) == [.live])
        }
        #expect(changes.allSatisfy { $0.source == applied.imagePath && $0.succeeded })
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == applied.imagePath)
        #expect(domain.configDrive("sda")?.source == (persistent ? applied.imagePath : nil))
        #expect(report.warnings.isEmpty)
    }

    @Test("the old image is removed only after the new one is attached live and in the config, and recorded")
    func oldImageRemovedAfterAttach() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        let hypervisor = harness.hypervisor
        let seen = Collected<String>()
        harness.store.onRemove { path in
            let domain = hypervisor.domain(PipelineHarness.web1.uuid)
            let live = domain?.liveDrive("sda")?.source ?? "-"
            let config = domain?.configDrive("sda")?.source ?? "-"
            let recorded = domain?.liveAppliedState?.imagePath ?? "-"
            seen.append("\(path) live=\(live) config=\(config) applied=\(recorded)")
        }
        let applied = try #require(await harness.run().applied)
        #expect(applied.generation == 2)
        let new = applied.imagePath
        #expect(seen.all == ["\(old) live=\(new) config=\(new) applied=\(new)"])
        #expect(harness.store.removedPaths == [old])
        #expect(await harness.store.exists(path: new))
    }

    @Test(
        "an old image that is not ours is never removed",
        arguments: [
            // another domain's image in our directory
            PipelineHarness.imagePath(PipelineHarness.db1, generation: 1),
            // outside the directory
            "/srv/isos/cloud-init.iso",
            // our naming, but outside the directory
            "/tmp/" + ImageNaming.name(domain: PipelineHarness.web1, generation: 1, contentHash: "aaaaaaaaaaaa"),
            // a sibling directory whose name starts like ours
            PipelineHarness.directory + "-old/"
                + ImageNaming.name(domain: PipelineHarness.web1, generation: 1, contentHash: "aaaaaaaaaaaa"),
            // a subdirectory of ours
            PipelineHarness.directory + "/keep/"
                + ImageNaming.name(domain: PipelineHarness.web1, generation: 1, contentHash: "aaaaaaaaaaaa"),
            // in our directory but not named like our images
            PipelineHarness.directory + "/web1-context.iso",
        ])
    func foreignOldImageKept(old: String) async throws {
        let harness = PipelineHarness()
        harness.addDomain(drives: [PipelineHarness.sata(source: old)])
        let applied = try #require(await harness.run().applied)
        #expect(applied.imagePath != old)
        #expect(harness.store.removalRequests.isEmpty)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == applied.imagePath)
    }

    @Test("a failure to remove the old image is a warning; the run is applied")
    func oldImageRemovalFails() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.store.failRemovals(times: nil)
        let report = await harness.run()
        #expect(report.applied?.generation == 2)
        #expect(report.warnings.count == 1)
        #expect(report.warnings.first?.contains(old) == true)
    }
}

// MARK: - Which domains

@Suite("Pipeline: which domains are managed")
struct PipelineManagementTests {
    @Test("a domain without metadata is skipped after resolve, with no other call")
    func unmanaged() async {
        let harness = PipelineHarness()
        harness.addDomain(metadata: nil)
        let report = await harness.run()
        #expect(report.outcome == .skipped(.notManaged))
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot])
        #expect(harness.store.events.isEmpty)
    }

    @Test("managed=\"no\" is skipped whatever the policy", arguments: ManagedDomains.allCases)
    func optedOut(policy: ManagedDomains) async {
        let harness = PipelineHarness(managedPolicy: policy)
        harness.addDomain(metadata: PipelineHarness.metadata("managed=\"no\"", role: "web"))
        let report = await harness.run()
        #expect(report.outcome == .skipped(.notManaged))
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot])
        #expect(harness.store.events.isEmpty)
    }

    @Test("managed policy 'all' manages a domain without metadata")
    func policyAll() async throws {
        let harness = PipelineHarness(managedPolicy: .all)
        harness.addDomain(metadata: nil)
        let applied = try #require(await harness.run().applied)
        #expect(applied.generation == 1)
        #expect(applied.format == .noCloud)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == applied.imagePath)
    }

    @Test("a domain that is not running or paused is skipped", arguments: [DomainSnapshot.RunState.shutOff, .other])
    func notRunning(state: DomainSnapshot.RunState) async {
        let harness = PipelineHarness()
        harness.addDomain(state: state)
        let report = await harness.run()
        #expect(report.outcome == .skipped(.notRunning))
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot])
    }

    @Test("a domain that does not exist is skipped as gone, without retries")
    func missing() async {
        let harness = PipelineHarness()
        let report = await harness.run()
        #expect(report.outcome == .skipped(.gone))
        #expect(report.domain == nil)
        #expect(harness.hypervisor.calls.map(\.description) == ["snapshot !noDomain"])
        #expect(harness.sleeper.durations.isEmpty)
    }

    @Test(
        "bad metadata fails the resolve phase with an error naming the field",
        arguments: [
            (PipelineHarness.metadata("format=\"floppy\""), "format"),
            (PipelineHarness.metadata("colour=\"blue\""), "colour"),
            (PipelineHarness.metadata("hostname=\"bad_host!\""), "hostname"),
            (
                "<recontext:context xmlns:recontext=\"urn:recontextd:context:1\"><var name=\"host\">x</var></recontext:context>",
                "var[1].name"
            ),
            ("<recontext:context xmlns:recontext=\"urn:recontextd:context:1\"><var name=\"a\">x</var>", ""),
            (PipelineHarness.metadata("device=\"sdz\""), "device"),
        ])
    func badMetadata(xml: String, field: String) async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.update(PipelineHarness.web1.uuid) { $0.contextMetadata = xml }
        let report = await harness.run(trigger: .metadataChanged)

        let failure = try #require(report.failure, "\(report.outcome)")
        #expect(failure.phase == .resolve)
        #expect(failure.transient == false)
        #expect(failure.message.contains("domain web1"))
        if !field.isEmpty { #expect(failure.message.contains("\(field):"), "\(failure.message)") }
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot])
        #expect(harness.store.events.isEmpty)
        #expect(harness.sleeper.durations.isEmpty, "bad data is not retried")
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == old)
    }
}

// MARK: - Which drive

@Suite("Pipeline: locating the context drive")
struct PipelineDriveTests {
    static let cdroms = [PipelineHarness.sata("sda", source: "/srv/isos/install.iso"), PipelineHarness.sata("sdc")]

    @Test("the metadata's device names the drive")
    func deviceAttribute() async throws {
        let harness = PipelineHarness(defaultTarget: "sda")
        harness.addDomain(drives: Self.cdroms, metadata: PipelineHarness.metadata("device=\"sdc\""))
        let applied = try #require(await harness.run().applied)
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sdc")?.source == applied.imagePath)
        #expect(domain.liveDrive("sda")?.source == "/srv/isos/install.iso")
    }

    @Test("the configured default target names the drive when the metadata does not")
    func defaultTarget() async throws {
        let harness = PipelineHarness(defaultTarget: "sdc")
        harness.addDomain(drives: Self.cdroms)
        let applied = try #require(await harness.run().applied)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sdc")?.source == applied.imagePath)
    }

    @Test("otherwise the drive holding one of our images is used")
    func ourDrive() async throws {
        let harness = PipelineHarness()
        let ours = PipelineHarness.imagePath(generation: 1)
        harness.addDomain(drives: [Self.cdroms[0], PipelineHarness.sata("sdc", source: ours)])
        let applied = try #require(await harness.run().applied)
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sdc")?.source == applied.imagePath)
        #expect(domain.liveDrive("sda")?.source == "/srv/isos/install.iso")
    }

    @Test("several drives and none of ours, or no drive at all: failed resolve naming device", arguments: [2, 0])
    func ambiguous(count: Int) async throws {
        let harness = PipelineHarness()
        harness.addDomain(drives: Array(Self.cdroms.prefix(count)))
        let failure = try #require(await harness.run().failure)
        #expect(failure.phase == .resolve)
        #expect(failure.message.contains("device:"))
        #expect(harness.hypervisor.calls.map(\.operation) == [.snapshot])
    }
}
