import Foundation
import RecontextCore
import Synchronization
import TestSupport
import Testing

// MARK: - Retries

@Suite("Pipeline: retries and backoff")
struct PipelineRetryTests {
    static func ms(_ value: Int64) -> Duration { .milliseconds(value) }

    @Test(
        "the backoff doubles from the initial wait and is capped",
        arguments: [
            (
                RetryPolicy(attempts: 5, initialBackoff: .milliseconds(200), maxBackoff: .seconds(1)),
                [200, 400, 800, 1000]
            ),
            (RetryPolicy(attempts: 3, initialBackoff: .milliseconds(100), maxBackoff: .seconds(10)), [100, 200]),
            (
                RetryPolicy(attempts: 6, initialBackoff: .milliseconds(300), maxBackoff: .milliseconds(500)),
                [300, 500, 500, 500, 500]
            ),
            (RetryPolicy(attempts: 1, initialBackoff: .milliseconds(200), maxBackoff: .seconds(1)), []),
        ] as [(RetryPolicy, [Int64])])
    func backoffSchedule(policy: RetryPolicy, expected: [Int64]) {
        let delays = (1..<policy.attempts).map { policy.backoff(afterAttempt: $0) }
        #expect(delays == expected.map(Self.ms))
    }

    @Test("a transient insert failure is retried with backoff (200, 400, 800, 1000 ms) and then succeeds")
    func transientInsertRetried() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        harness.hypervisor.fail(.changeMedia, scope: .live, times: 4, kind: .transient)
        let report = await harness.run()

        let applied = try #require(report.applied, "\(report.outcome)")
        #expect(harness.sleeper.durations == [200, 400, 800, 1000].map(Self.ms))
        let live = harness.hypervisor.calls(.changeMedia).filter { $0.scope == .live }
        #expect(live.map(\.succeeded) == [false, false, false, false, true])
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == applied.imagePath)
    }

    @Test("a transient resolve failure is retried", arguments: [1, 2])
    func transientResolveRetried(failures: Int) async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        harness.hypervisor.fail(.snapshot, times: failures, kind: .transient)
        let report = await harness.run()
        #expect(report.applied?.generation == 1)
        #expect(harness.sleeper.durations == Array([200, 400].map(Self.ms).prefix(failures)))
    }

    @Test(
        "permanent and unsupported errors are not retried",
        arguments: [HypervisorError.Kind.permanent, .unsupported])
    func permanentNotRetried(kind: HypervisorError.Kind) async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: kind)
        let report = await harness.run()

        let failure = try #require(report.failure)
        #expect(failure.phase == .insert)
        #expect(failure.transient == false)
        #expect(harness.sleeper.durations.isEmpty)
        #expect(harness.hypervisor.calls(.changeMedia).count == 1)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == old)
    }

    @Test("a cancelled backoff ends the retries with a transient failure")
    func cancelledBackoff() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        harness.sleeper.cancel()
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: .transient)
        let report = await harness.run()
        let failure = try #require(report.failure)
        #expect(failure.phase == .insert)
        #expect(failure.transient)
        #expect(harness.hypervisor.calls(.changeMedia).count == 1)
        #expect(harness.store.images.isEmpty, "the unused image was discarded")
    }
}

// MARK: - Failures per phase

@Suite("Pipeline: a failure in any phase leaves a working image attached")
struct PipelineFailureTests {
    @Test("resolve fails (after retries): nothing changes", arguments: [HypervisorError.Kind.transient, .permanent])
    func resolveFails(kind: HypervisorError.Kind) async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.snapshot, times: nil, kind: kind)
        let report = await harness.run()

        let failure = try #require(report.failure)
        #expect(failure.phase == .resolve)
        #expect(failure.transient == (kind == .transient))
        #expect(report.isRetryable == (kind == .transient))
        #expect(harness.hypervisor.calls.allSatisfy { $0.operation == .snapshot })
        #expect(harness.hypervisor.calls.count == (kind == .transient ? 5 : 1))
        #expect(harness.store.events.isEmpty)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == old)
    }

    @Test(
        "build fails (disk full or too large): the old image stays attached, nothing is removed",
        arguments: [true, false])
    func buildFails(transient: Bool) async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.store.failWrites(times: nil, transient: transient)
        let report = await harness.run()

        let failure = try #require(report.failure)
        #expect(failure.phase == .build)
        #expect(failure.transient == transient)
        #expect(harness.hypervisor.mutatingCalls.isEmpty)
        #expect(harness.store.removalRequests.isEmpty)
        #expect(await harness.store.exists(path: old))
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == old)
        #expect(domain.configDrive("sda")?.source == old)
        #expect(domain.liveAppliedState?.generation == 1)
    }

    @Test("insert fails after every retry: the old image stays attached and the new file is discarded")
    func insertFails() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: .transient)
        let report = await harness.run()

        let failure = try #require(report.failure)
        #expect(failure.phase == .insert)
        #expect(failure.transient)
        #expect(harness.sleeper.durations.count == 4)
        #expect(harness.hypervisor.calls(.changeMedia).count == 5)
        #expect(harness.hypervisor.calls(.setAppliedMetadata).isEmpty)

        let new = PipelineHarness.directory + "/" + (try #require(harness.store.writtenNames.first))
        #expect(harness.store.removedPaths == [new])
        #expect(harness.store.images.keys.sorted() == [old])
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == old)
        #expect(domain.configDrive("sda")?.source == old)
        #expect(domain.liveAppliedState?.imagePath == old)
    }

    @Test("the persistent definition cannot be updated: a warning, and the old image is kept")
    func configUpdateFails() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.changeMedia, scope: .config, times: nil, kind: .permanent)
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(report.warnings.count == 1)
        #expect(report.warnings.first?.contains("persistent definition") == true)
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == applied.imagePath)
        #expect(domain.configDrive("sda")?.source == old)
        #expect(harness.store.removalRequests.isEmpty, "the persistent definition still names the old image")
        #expect(await harness.store.exists(path: old))
        #expect(domain.liveAppliedState == applied)
    }

    @Test("the new image is flushed to disk after the live insert and before the persistent definition names it")
    func flushedBetweenInsertAndPersist() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        let seen = Mutex<[(live: String?, config: String?)]>([])
        harness.store.onFlush { _ in
            let domain = harness.hypervisor.domain(PipelineHarness.web1.uuid)
            seen.withLock { $0.append((domain?.liveDrive("sda")?.source, domain?.configDrive("sda")?.source)) }
        }
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(report.warnings.isEmpty)
        #expect(harness.store.flushedPaths == [applied.imagePath])
        let atFlush = seen.withLock { $0 }
        #expect(atFlush.count == 1)
        #expect(atFlush.first?.live == applied.imagePath, "the guest has the new image before the flush")
        #expect(atFlush.first?.config == old, "the persistent definition names it only after the flush")
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.configDrive("sda")?.source == applied.imagePath)
        #expect(report.timings.phases[.persist] != nil)
        #expect(report.timings.insertedAt != nil)
    }

    @Test(
        "the new image cannot be flushed to disk: the guest keeps it, the persistent definition and the old image stay")
    func flushFails() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.store.failFlushes(times: nil)
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(report.warnings.count == 2, "\(report.warnings)")
        #expect(report.warnings.first?.contains("could not be flushed to disk") == true)
        #expect(report.warnings.last?.contains("the persistent definition keeps the old one") == true)
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == applied.imagePath)
        #expect(domain.configDrive("sda")?.source == old)
        #expect(harness.hypervisor.calls(.changeMedia).filter { $0.scope == .config }.isEmpty)
        #expect(harness.store.removalRequests.isEmpty, "the persistent definition still names the old image")
        #expect(domain.liveAppliedState == applied)
    }

    @Test(
        "the domain leaves this host right after the live insert: applied, one warning saying so, no record, the old image kept"
    )
    func leftAfterInsert() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.changeMedia, scope: .config, kind: .noDomain, vanishes: true)
        let report = await harness.run()

        let applied = try #require(report.applied, "\(report.outcome)")
        #expect(report.warnings.count == 1, "\(report.warnings)")
        #expect(report.warnings.first?.contains("left this host right after the new image went in") == true)
        #expect(harness.hypervisor.calls(.setAppliedMetadata).isEmpty, "nothing left to record it on")
        #expect(harness.store.removalRequests.isEmpty, "the definition it took along may still name \(old)")
        #expect(harness.store.flushedPaths == [applied.imagePath])
    }

    @Test("recording the applied state fails: a warning, the run is still applied")
    func appliedMetadataFails() async throws {
        let harness = PipelineHarness()
        harness.addDomainWithPreviousImage()
        harness.hypervisor.fail(.setAppliedMetadata, times: nil, kind: .transient)
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(applied.generation == 2)
        #expect(report.warnings.count == 1)
        #expect(report.warnings.first?.contains("applied state could not be recorded") == true)
        #expect(harness.sleeper.durations.count == 4, "retried like any transient failure")
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == applied.imagePath)
        #expect(domain.configDrive("sda")?.source == applied.imagePath)
        #expect(domain.liveAppliedState?.generation == 1)
    }

    @Test("without an applied record, an attached image with the desired content is kept and recorded again")
    func lostRecordSameContent() async throws {
        let harness = PipelineHarness()
        harness.addDomain()
        let first = try #require(await harness.run().applied)
        harness.hypervisor.update(PipelineHarness.web1.uuid) {
            $0.liveApplied = nil
            $0.configApplied = nil
        }
        // Were the content built again, this swap would fail; it must not even be tried.
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: .permanent)
        let report = await harness.run()

        guard case .unchanged(let state) = report.outcome else {
            Issue.record("expected unchanged, got \(report.outcome)")
            return
        }
        #expect(state.generation == first.generation)
        #expect(state.imagePath == first.imagePath)
        #expect(harness.store.writtenNames.count == 1, "nothing built again")
        #expect(await harness.store.exists(path: first.imagePath))
        #expect(harness.store.removalRequests.isEmpty)
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sda")?.source == first.imagePath)
        #expect(domain.liveAppliedState?.generation == first.generation, "the record is written again")
        #expect(domain.liveAppliedState?.imagePath == first.imagePath)
    }

    @Test("after the applied record could not be written, the next run records it without a new image")
    func unrecordedGenerationThenSameContent() async throws {
        let harness = PipelineHarness()
        harness.addDomain(metadata: PipelineHarness.metadata(role: "web"))
        let first = try #require(await harness.run().applied)
        harness.hypervisor.update(PipelineHarness.web1.uuid) {
            $0.contextMetadata = PipelineHarness.metadata(role: "db")
        }
        harness.hypervisor.fail(.setAppliedMetadata, times: nil, kind: .permanent)
        let second = try #require(await harness.run(trigger: .metadataChanged).applied)
        #expect(second.generation == 2)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveAppliedState == first, "the record is stale")

        harness.hypervisor.clearFailures()
        let third = await harness.run(trigger: .reconcile)
        guard case .unchanged(let state) = third.outcome else {
            Issue.record("expected unchanged, got \(third.outcome)")
            return
        }
        #expect(state.generation == 2)
        #expect(state.imagePath == second.imagePath)
        #expect(harness.store.removedPaths == [first.imagePath])
        #expect(harness.store.images.keys.sorted() == [second.imagePath])
        let recorded = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveAppliedState)
        #expect(recorded.generation == 2)
        #expect(recorded.imagePath == second.imagePath)

        // A real change after that continues past the attached generation, under a new name.
        harness.hypervisor.update(PipelineHarness.web1.uuid) {
            $0.contextMetadata = PipelineHarness.metadata(role: "cache")
        }
        let fourth = try #require(await harness.run(trigger: .metadataChanged).applied)
        #expect(fourth.generation == 3)
        #expect(fourth.imagePath != second.imagePath)
    }

    @Test(
        "the domain vanishes mid-pipeline: skipped as gone, the new image discarded",
        arguments: [FakeHypervisor.Operation.changeMedia, .detachDrive, .attachDrive])
    func goneMidPipeline(operation: FakeHypervisor.Operation) async throws {
        let harness = PipelineHarness(deviceMode: operation == .changeMedia ? .mediaChange : .scsiReplace)
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        harness.hypervisor.fail(operation, times: 1, vanishes: true)
        let report = await harness.run()

        #expect(report.outcome == .skipped(.gone))
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid) == nil)
        let new = PipelineHarness.directory + "/" + (try #require(harness.store.writtenNames.first))
        #expect(harness.store.removedPaths == [new])
        #expect(harness.store.images.keys.sorted() == [old], "the old image is left for the collector")
        #expect(harness.sleeper.durations.isEmpty)
    }
}

// MARK: - SCSI replace

@Suite("Pipeline: SCSI replace")
struct PipelineSCSITests {
    @Test("scsi-replace detaches the old drive, attaches the new one and updates the config")
    func replace() async throws {
        let harness = PipelineHarness(deviceMode: .scsiReplace)
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(
            harness.hypervisor.calls.map(\.description) == [
                "snapshot",
                "detachDrive(live) sdb <- \(old)",
                "attachDrive(live) sdb <- \(applied.imagePath)",
                "changeMedia(config) sdb <- \(applied.imagePath)",
                "setAppliedMetadata(live+config)",
            ])
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sdb")?.source == applied.imagePath)
        #expect(domain.liveDrive("sdb")?.handle == PipelineHarness.scsi().handle)
        #expect(domain.configDrive("sdb")?.source == applied.imagePath)
        #expect(harness.store.removedPaths == [old])
        #expect(report.warnings.isEmpty)
    }

    @Test("the opennebula format always gets a media change: its guest tools ignore a detach and attach")
    func openNebulaMediaChange() async throws {
        let harness = PipelineHarness(deviceMode: .scsiReplace)
        var drive = PipelineHarness.scsi()
        drive.source = nil
        harness.addDomain(drives: [drive], metadata: PipelineHarness.metadata("format=\"opennebula\"", role: "web"))
        let report = await harness.run()
        let applied = try #require(report.applied)
        #expect(applied.format == .openNebula)
        #expect(harness.hypervisor.calls(.detachDrive).isEmpty && harness.hypervisor.calls(.attachDrive).isEmpty)
        #expect(harness.hypervisor.calls(.changeMedia).first?.scope == .live)
        #expect(report.warnings.isEmpty)
    }

    @Test(
        "detach succeeds, attach fails: the old drive is put back, the new file discarded",
        arguments: [(HypervisorError.Kind.permanent, 1), (.transient, 5)])
    func attachFails(kind: HypervisorError.Kind, times: Int) async throws {
        let harness = PipelineHarness(deviceMode: .scsiReplace)
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        harness.hypervisor.fail(.attachDrive, times: times, kind: kind)
        let report = await harness.run()

        let failure = try #require(report.failure)
        #expect(failure.phase == .insert)
        #expect(failure.transient == (kind == .transient))
        #expect(report.warnings.contains { $0.contains("old one was put back") })
        let attaches = harness.hypervisor.calls(.attachDrive)
        #expect(attaches.count == times + 1)
        #expect(attaches.last?.source == old)
        #expect(attaches.last?.succeeded == true)

        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sdb")?.source == old)
        #expect(domain.configDrive("sdb")?.source == old)
        let new = PipelineHarness.directory + "/" + (try #require(harness.store.writtenNames.first))
        #expect(harness.store.removedPaths == [new])
        #expect(await harness.store.exists(path: old))
        #expect(harness.hypervisor.calls(.setAppliedMetadata).isEmpty)
    }

    @Test("detach fails: the old drive is still there and nothing is attached")
    func detachFails() async throws {
        let harness = PipelineHarness(deviceMode: .scsiReplace)
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        harness.hypervisor.fail(.detachDrive, times: nil, kind: .permanent)
        let report = await harness.run()
        #expect(report.failure?.phase == .insert)
        #expect(harness.hypervisor.calls(.attachDrive).isEmpty)
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sdb")?.source == old)
        #expect(harness.store.images.keys.sorted() == [old])
    }

    @Test(
        "a SCSI drive whose tray stays shut through every media change is replaced (detach and attach), with a warning"
    )
    func shutTrayReplaced() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: .transient, refusedByTray: true)
        let report = await harness.run()

        let applied = try #require(report.applied, "\(report)")
        #expect(harness.hypervisor.calls(.changeMedia).filter { $0.scope == .live }.count == 5)
        // Each refusal asks whether the tray's record is stale; it is not, so nothing is reopened.
        #expect(harness.hypervisor.calls(.reopenTray).count == 5)
        #expect(
            harness.hypervisor.calls.filter {
                ($0.operation != .changeMedia || $0.scope != .live) && $0.operation != .reopenTray
            }.map(\.description)
                == [
                    "snapshot",
                    "detachDrive(live) sdb <- \(old)",
                    "attachDrive(live) sdb <- \(applied.imagePath)",
                    "changeMedia(config) sdb <- \(applied.imagePath)",
                    "setAppliedMetadata(live+config)",
                ])
        #expect(report.warnings.count == 1)
        #expect(report.warnings.first?.contains("tray of sdb stayed shut") == true, "\(report.warnings)")
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive("sdb")?.source == applied.imagePath)
        #expect(domain.configDrive("sdb")?.source == applied.imagePath)
        #expect(harness.store.removedPaths == [old])
    }

    @Test("a tray that shuts once is only retried: no replacement")
    func shutTrayOnce() async throws {
        let harness = PipelineHarness()
        _ = harness.addDomainWithPreviousImage(drive: PipelineHarness.scsi())
        harness.hypervisor.fail(.changeMedia, scope: .live, times: 1, kind: .transient, refusedByTray: true)
        let report = await harness.run()
        #expect(report.applied != nil)
        #expect(harness.hypervisor.calls(.detachDrive).isEmpty && harness.hypervisor.calls(.attachDrive).isEmpty)
        #expect(report.warnings.isEmpty)
    }

    @Test("a shut tray on SATA cannot be replaced: the run fails as transient and the old image stays")
    func shutTraySATA() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.sata())
        harness.hypervisor.fail(.changeMedia, scope: .live, times: nil, kind: .transient, refusedByTray: true)
        let report = await harness.run()
        let failure = try #require(report.failure)
        #expect(failure.phase == .insert && failure.transient)
        #expect(harness.hypervisor.calls(.detachDrive).isEmpty && harness.hypervisor.calls(.attachDrive).isEmpty)
        #expect(harness.store.images.keys.sorted() == [old])
    }

    @Test(
        "a tray recorded open but shut (the guest reset the drive) is opened and the media changed at once",
        arguments: [
            PipelineHarness.sata(), PipelineHarness.scsi(), ContextDrive(target: "hdc", bus: "ide", source: nil),
        ])
    func staleTrayReopened(drive: ContextDrive) async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage(drive: drive)
        harness.hypervisor.update(PipelineHarness.web1.uuid) { $0.staleTrays = [drive.target] }
        let report = await harness.run()

        let applied = try #require(report.applied, "\(report)")
        #expect(
            harness.hypervisor.calls.filter { $0.operation != .snapshot && $0.operation != .setAppliedMetadata }
                .map(\.description)
                == [
                    "changeMedia(live) \(drive.target) <- \(applied.imagePath) !transient",
                    "reopenTray \(drive.target)",
                    "changeMedia(live) \(drive.target) <- \(applied.imagePath)",
                    "changeMedia(config) \(drive.target) <- \(applied.imagePath)",
                ])
        #expect(report.warnings.count == 1)
        #expect(
            report.warnings.first?.hasPrefix("the tray of \(drive.target) was recorded open but was shut") == true
                && report.warnings.first?.contains("opened it (fake), then changed the media") == true,
            "\(report.warnings)")
        let domain = try #require(harness.hypervisor.domain(PipelineHarness.web1.uuid))
        #expect(domain.liveDrive(drive.target)?.source == applied.imagePath && domain.staleTrays.isEmpty)
        #expect(harness.store.removedPaths == [old])
    }

    @Test("a tray whose reopening fails: the refusal is retried as before, with a warning naming the failure")
    func staleTrayReopenFails() async throws {
        let harness = PipelineHarness()
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.sata())
        harness.hypervisor.update(PipelineHarness.web1.uuid) { $0.staleTrays = ["sda"] }
        harness.hypervisor.fail(.reopenTray, times: nil, kind: .permanent)
        let report = await harness.run()

        let failure = try #require(report.failure, "\(report)")
        #expect(failure.phase == .insert && failure.transient, "\(failure)")
        #expect(failure.message.contains("Tray of device 'sda' is not open"), "\(failure)")
        #expect(harness.hypervisor.calls(.reopenTray).count == 5)
        #expect(
            report.warnings.contains { $0.hasPrefix("the tray of sda could not be reopened") }, "\(report.warnings)")
        #expect(harness.store.images.keys.sorted() == [old])
    }

    @Test("scsi-replace on a SATA drive falls back to a media change, with a warning")
    func sataFallsBack() async throws {
        let harness = PipelineHarness(deviceMode: .scsiReplace)
        let old = harness.addDomainWithPreviousImage(drive: PipelineHarness.sata())
        let report = await harness.run()

        let applied = try #require(report.applied)
        #expect(report.warnings.count == 1)
        #expect(report.warnings.first?.contains("scsi-replace") == true)
        #expect(harness.hypervisor.calls(.detachDrive).isEmpty)
        #expect(harness.hypervisor.calls(.attachDrive).isEmpty)
        #expect(harness.hypervisor.calls(.changeMedia).map(\.scope) == [.live, .config])
        #expect(harness.hypervisor.domain(PipelineHarness.web1.uuid)?.liveDrive("sda")?.source == applied.imagePath)
        #expect(harness.store.removedPaths == [old])
    }
}
