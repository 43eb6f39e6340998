import Foundation
import Logging

/// The four-phase recontextualization of one domain: resolve, eject, build, insert.
///
/// A run never leaves a domain worse off than it found it:
/// - the new image is built (atomically, under a new name) while the old one is still attached;
/// - a failed insert is retried with backoff; if it still fails, the old image is put back
///   where it was removed (SCSI replace) and the new file is deleted;
/// - the old image file is removed only after the new one is attached (live and config);
/// - when the attached image already holds the desired content, nothing is touched.
///
/// Runs of one domain must not overlap; ``DomainScheduler`` guarantees that.
public struct ContextPipeline: Sendable {
    /// The hypervisor the domains live on.
    public let hypervisor: any Hypervisor
    /// Where images are written.
    public let images: any ImageStore
    /// Host facts and policies.
    public let settings: PipelineSettings
    /// Waits between retries.
    public let sleeper: any Sleeper
    /// The base logger; each run adds `domain.name`, `domain.uuid` and `run.id`.
    public let logger: Logger

    /// Creates a pipeline.
    public init(
        hypervisor: any Hypervisor, images: any ImageStore, settings: PipelineSettings,
        sleeper: any Sleeper = ClockSleeper(), logger: Logger
    ) {
        self.hypervisor = hypervisor
        self.images = images
        self.settings = settings
        self.sleeper = sleeper
        self.logger = logger
    }

    // MARK: - Desired state

    /// What a domain should have attached now.
    public struct Desired: Sendable, Hashable {
        /// The domain's parsed context specification.
        public var spec: ContextSpec
        /// The rendered content (without the generation record).
        public var context: RenderedContext
        /// The drive that holds the context image.
        public var drive: ContextDrive
        /// The applied state recorded in the domain's metadata, if any.
        public var applied: AppliedState?
    }

    /// Whether a domain is managed, and if so what it should have attached.
    /// - Returns: `nil` when the domain has no context metadata or has not opted in.
    /// - Throws: ``ContextError`` for bad metadata, a missing drive or a template error.
    public func desired(for snapshot: DomainSnapshot) throws(ContextError) -> Desired? {
        var spec: ContextSpec
        if let xml = snapshot.contextMetadata {
            spec = try ContextMetadata.parse(xml, domain: snapshot.identity, limits: settings.limits)
            guard spec.managed else { return nil } // managed="no" always wins
        } else {
            guard settings.managedPolicy == .all else { return nil }
            spec = ContextSpec() // host facts only, default format
        }
        let drive = try locateDrive(in: snapshot, spec: spec)
        let renderer = ContextRenderer(limits: settings.limits)
        let context = try renderer.render(
            spec: spec, host: settings.host, domain: snapshot.identity, defaultFormat: settings.defaultFormat,
            defaultInstanceID: settings.defaultInstanceID)
        let applied = snapshot.appliedMetadata.flatMap { try? AppliedMetadata.parse($0) }
        return Desired(spec: spec, context: context, drive: drive, applied: applied)
    }

    /// The drive named by the domain's metadata or the configuration; otherwise the one whose
    /// image is in our directory; otherwise the only CD-ROM.
    func locateDrive(in snapshot: DomainSnapshot, spec: ContextSpec) throws(ContextError) -> ContextDrive {
        if let target = spec.device ?? settings.defaultTarget {
            guard let drive = snapshot.drives.first(where: { $0.target == target }) else {
                throw ContextError(
                    .missing, domain: snapshot.identity.name, field: "device",
                    "no CD-ROM with target '\(target)' (the domain has: \(snapshot.drives.map(\.target).joined(separator: ", ")))"
                )
            }
            return drive
        }
        let prefix = images.directory.hasSuffix("/") ? images.directory : images.directory + "/"
        if let ours = snapshot.drives.first(where: { $0.source?.hasPrefix(prefix) == true }) { return ours }
        if snapshot.drives.count == 1 { return snapshot.drives[0] }
        if snapshot.drives.isEmpty {
            throw ContextError(
                .missing, domain: snapshot.identity.name, field: "device", "the domain has no CD-ROM drive")
        }
        throw ContextError(
            .missing, domain: snapshot.identity.name, field: "device",
            "the domain has \(snapshot.drives.count) CD-ROM drives and none holds one of our images: name one with device=\"…\""
        )
    }

    // MARK: - Run

    /// Runs the pipeline for one domain.
    ///
    /// Never throws: every outcome, failures included, is in the report, and logged (one notice
    /// per completed run with its phase timings, warnings for retries, errors for failures).
    public func run(uuid: String, trigger: Trigger, runID: String = RunID.make()) async -> RunReport {
        let run = Run(pipeline: self, uuid: uuid, trigger: trigger, runID: runID)
        let report = await run.execute()
        run.log(report)
        return report
    }
}

/// Short random run identifiers.
public enum RunID {
    /// Eight hex digits.
    public static func make() -> String {
        String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

// MARK: - One run

/// The state of one run; keeps ``ContextPipeline/run(uuid:trigger:runID:)`` readable.
private final class Run {
    let pipeline: ContextPipeline
    let uuid: String
    let trigger: Trigger
    let runID: String
    var logger: Logger
    var timings = PhaseTimings()
    var warnings: [String] = []
    var identity: DomainIdentity?
    /// libvirt's error code of the failure that ended the run, for the log (`libvirt.error_code`).
    var failureCode: Int32?
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant

    init(pipeline: ContextPipeline, uuid: String, trigger: Trigger, runID: String) {
        self.pipeline = pipeline
        self.uuid = uuid
        self.trigger = trigger
        self.runID = runID
        var logger = pipeline.logger
        logger[metadataKey: "domain.uuid"] = "\(uuid)"
        logger[metadataKey: "run.id"] = "\(runID)"
        logger[metadataKey: "run.trigger"] = "\(trigger)"
        self.logger = logger
        self.started = clock.now
    }

    var hypervisor: any Hypervisor { pipeline.hypervisor }

    /// The run's one look-up of its domain, opened at the resolve phase and kept for the run.
    private var openedSession: (any DomainSession)?

    /// Opens the run's domain session, once; a failed attempt is tried again by the next call.
    func openSession() async throws(HypervisorError) -> any DomainSession {
        if let openedSession { return openedSession }
        let session = try await hypervisor.session(for: uuid)
        openedSession = session
        return session
    }

    /// The session every hypervisor call after the resolve phase goes through.
    var session: any DomainSession {
        guard let openedSession else { preconditionFailure("the domain session is opened at the resolve phase") }
        return openedSession
    }
    var settings: PipelineSettings { pipeline.settings }

    func report(_ outcome: RunReport.Outcome) -> RunReport {
        timings.total = clock.now - started
        return RunReport(
            uuid: uuid, domain: identity, trigger: trigger, runID: runID, outcome: outcome, timings: timings,
            warnings: warnings)
    }

    func timed<T, E: Error>(_ phase: Phase, _ body: () async throws(E) -> T) async throws(E) -> T {
        let start = clock.now
        defer { timings.phases[phase, default: .zero] += clock.now - start }
        return try await body()
    }

    /// Retries `body` on transient hypervisor errors with the configured backoff.
    func retrying<T>(
        _ operation: String, _ body: () async throws(HypervisorError) -> T
    ) async throws(HypervisorError) -> T {
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch  where error.isTransient && attempt < settings.retry.attempts {
                let delay = settings.retry.backoff(afterAttempt: attempt)
                logger.warning(
                    "\(operation) failed, retrying",
                    metadata: ["error": "\(error)", "attempt": "\(attempt)", "backoff": "\(delay)"])
                do { try await pipeline.sleeper.sleep(for: delay) } catch {
                    throw HypervisorError(.transient, operation: operation, message: "cancelled")
                }
                attempt += 1
            }
        }
    }

    func execute() async -> RunReport {
        // MARK: resolve
        let resolveStart = clock.now
        let snapshot: DomainSnapshot
        do {
            snapshot = try await retrying("resolve") { () async throws(HypervisorError) in
                try await openSession().snapshot()
            }
        } catch {
            timings.phases[.resolve] = clock.now - resolveStart
            if error.isGone { return report(.skipped(.gone)) }
            failureCode = error.code
            return report(.failed(phase: .resolve, message: "\(error)", transient: error.isTransient))
        }
        identity = snapshot.identity
        logger[metadataKey: "domain.name"] = "\(snapshot.identity.name)"
        guard snapshot.state == .running || snapshot.state == .paused else {
            timings.phases[.resolve] = clock.now - resolveStart
            return report(.skipped(.notRunning))
        }
        let desired: ContextPipeline.Desired?
        do {
            desired = try pipeline.desired(for: snapshot)
        } catch {
            timings.phases[.resolve] = clock.now - resolveStart
            return report(.failed(phase: .resolve, message: "\(error)", transient: false))
        }
        timings.phases[.resolve] = clock.now - resolveStart
        guard let desired else { return report(.skipped(.notManaged)) }

        var drive = desired.drive
        let oldSource = drive.source
        // Skip when the attached image is ours and already holds the desired content: its name
        // carries the content hash (which covers the host's facts and name). If the recorded
        // applied state does not say so (a previous run could not record it), record it now
        // instead of building the same content again under a new generation.
        if let oldSource, let attached = parsedImage(oldSource, domain: snapshot.identity),
            desired.context.contentHash.hasPrefix(attached.hashPrefix),
            await pipeline.images.exists(path: oldSource)
        {
            let current = AppliedState(
                generation: attached.generation, contentHash: desired.context.contentHash, host: settings.host.name,
                time: desired.applied?.time ?? Date(), imagePath: oldSource, format: desired.context.format)
            if let applied = desired.applied, applied.contentHash == current.contentHash, applied.host == current.host,
                applied.imagePath == current.imagePath, applied.generation == current.generation,
                await persistentDefinitionNames(oldSource, drive: drive, snapshot: snapshot)
            {
                return report(.unchanged(applied))
            }
            var recorded = current
            recorded.time = Date()
            let scope: ChangeScope = snapshot.isPersistent ? [.live, .config] : [.live]
            // The record lags behind the drive: a previous run stopped after the live change (the
            // daemon was killed, or the config update failed). Make the persistent definition name
            // the attached image too, or it keeps the older one (and the next start would use it);
            // flushed to disk first, as that run may have stopped before it did.
            if scope.contains(.config), await makeDurable(oldSource) {
                do {
                    try await timed(.persist) { () async throws(HypervisorError) in
                        try await retrying("change media (config)") { () async throws(HypervisorError) in
                            try await session.changeMedia(drive: drive, to: oldSource, scope: .config)
                        }
                    }
                } catch {
                    warnings.append("the persistent definition could not be updated to the attached image: \(error)")
                }
            }
            do {
                try await timed(.record) { () async throws(HypervisorError) in
                    try await retrying("record applied state") { () async throws(HypervisorError) in
                        try await session.setAppliedMetadata(AppliedMetadata.serialize(recorded), scope: scope)
                    }
                }
            } catch {
                warnings.append("the attached image is current but its applied state could not be recorded: \(error)")
            }
            return report(.unchanged(recorded))
        }

        // MARK: build
        // Past both the recorded generation and the one attached: the record may be stale or
        // missing (it could not be written, or was lost), and reusing the attached image's name
        // would overwrite it, and delete it if this run then failed.
        let attachedGeneration = oldSource.flatMap { self.generation(of: $0, domain: snapshot.identity) } ?? 0
        let generation = max(desired.applied?.generation ?? 0, attachedGeneration) + 1
        let name = ImageNaming.name(
            domain: snapshot.identity, generation: generation, contentHash: desired.context.contentHash)
        let record = ContextRenderer.generationRecord(
            generation: generation, host: settings.host.name, contentHash: desired.context.contentHash,
            domain: snapshot.identity)
        let newPath: String
        do {
            newPath = try await timed(.build) { () async throws(ImageStoreError) in
                try await pipeline.images.write(desired.context, record: record, name: name)
            }
        } catch {
            return report(.failed(phase: .build, message: "\(error)", transient: error.isTransient))
        }

        // MARK: eject and insert
        var mode = settings.deviceMode
        if mode == .scsiReplace && drive.bus != "scsi" {
            warnings.append(
                "device mode scsi-replace needs a SCSI CD-ROM; \(drive.target) is on \(drive.bus): changed the media instead"
            )
            mode = .mediaChange
        }
        let scope: ChangeScope = snapshot.isPersistent ? [.live, .config] : [.live]
        do throws(HypervisorError) {
            switch mode {
            case .mediaChange:
                // A direct change: QEMU opens the tray, swaps and closes it (one TRAY_CHANGE
                // open/close pair); a separate eject would only add a round trip.
                timings.phases[.eject] = .zero
                try await timed(.insert) { () async throws(HypervisorError) in
                    try await retrying("change media (live)") { () async throws(HypervisorError) in
                        try await session.changeMedia(drive: drive, to: newPath, scope: .live)
                    }
                }
            case .scsiReplace:
                try await timed(.eject) { () async throws(HypervisorError) in
                    try await retrying("detach drive (live)") { () async throws(HypervisorError) in
                        try await session.detachDrive(drive, scope: .live)
                    }
                }
                do {
                    try await timed(.insert) { () async throws(HypervisorError) in
                        try await retrying("attach drive (live)") { () async throws(HypervisorError) in
                            try await session.attachDrive(drive, source: newPath, scope: .live)
                        }
                    }
                } catch {
                    await restoreDrive(drive, source: oldSource, domain: snapshot.identity)
                    throw error
                }
            }
        } catch {
            await discard(newPath)
            if error.isGone { return report(.skipped(.gone)) }
            failureCode = error.code
            return report(.failed(phase: .insert, message: "\(error)", transient: error.isTransient))
        }
        drive.source = newPath
        timings.insertedAt = clock.now

        // The persistent definition must name the new image too, or the next start (or the
        // destination of a persistent migration) would look for the old one. The image went in
        // before it was flushed to disk (QEMU reads it through the page cache either way, and the
        // flush would only delay the guest); it is flushed now, before anything that outlives a
        // power loss names it. If it cannot be, the persistent definition keeps the old image.
        let durable = await makeDurable(newPath)
        var oldStillReferenced = false
        var left = false
        if scope.contains(.config), !durable {
            oldStillReferenced = true
            warnings.append("the new image is attached, but the persistent definition keeps the old one")
        } else if scope.contains(.config) {
            do {
                try await timed(.persist) { () async throws(HypervisorError) in
                    try await retrying("change media (config)") { () async throws(HypervisorError) in
                        try await session.changeMedia(drive: drive, to: newPath, scope: .config)
                    }
                }
            } catch  where error.isGone {
                left = true
            } catch {
                oldStillReferenced = true
                warnings.append(
                    "the live domain has the new image but its persistent definition could not be updated: \(error)")
            }
        }

        // MARK: record
        let applied = AppliedState(
            generation: generation, contentHash: desired.context.contentHash, host: settings.host.name, time: Date(),
            imagePath: newPath, format: desired.context.format)
        if !left {
            do {
                try await timed(.record) { () async throws(HypervisorError) in
                    try await retrying("record applied state") { () async throws(HypervisorError) in
                        try await session.setAppliedMetadata(AppliedMetadata.serialize(applied), scope: scope)
                    }
                }
            } catch  where error.isGone {
                left = true
            } catch {
                warnings.append("the new image is attached but the applied state could not be recorded: \(error)")
            }
        }
        if left {
            // Migrated away (or undefined) between the live insert and the bookkeeping. Its new
            // host runs its own pipeline; the old image may still be named by the definition it
            // took along, so it is left to image collection, which knows what is referenced.
            warnings.append(
                "the domain left this host right after the new image went in (migrated away or undefined): "
                    + "its persistent definition and applied state were not written here")
            return report(.applied(applied))
        }

        // MARK: remove the old image
        if let oldSource, oldSource != newPath, !oldStillReferenced, isOurs(oldSource, domain: snapshot.identity) {
            do {
                try await pipeline.images.remove(path: oldSource)
            } catch {
                warnings.append("the old image \(oldSource) could not be removed: \(error)")
            }
        }
        return report(.applied(applied))
    }

    /// Whether the persistent definition of a persistent domain names `source` in `drive` (always
    /// true for a transient one). An attached image with a matching applied record is not enough: a
    /// run during an incoming migration sees the domain as transient (libvirt makes it persistent
    /// only at the migration's end) and changes only the live definition, so the persistent one
    /// may still name the source host's image. `false` when it cannot be read (the caller then
    /// rewrites it, and warns if that fails too).
    func persistentDefinitionNames(_ source: String, drive: ContextDrive, snapshot: DomainSnapshot) async -> Bool {
        guard snapshot.isPersistent else { return true }
        do {
            let drives = try await timed(.resolve) { () async throws(HypervisorError) in
                try await retrying("read the persistent definition") { () async throws(HypervisorError) in
                    try await session.persistentDrives()
                }
            }
            return drives.first { $0.target == drive.target }?.source == source
        } catch {
            return false
        }
    }

    /// Flushes `path` to disk (timed as part of `persist`); on failure adds a warning and returns
    /// `false`: then nothing that outlives a power loss may name the image.
    func makeDurable(_ path: String) async -> Bool {
        do {
            try await timed(.persist) { () async throws(ImageStoreError) in
                try await pipeline.images.makeDurable(path: path)
            }
            return true
        } catch {
            warnings.append("\(path) could not be flushed to disk: \(error)")
            return false
        }
    }

    /// Whether `path` is one of this domain's images in our directory.
    func isOurs(_ path: String, domain: DomainIdentity) -> Bool {
        generation(of: path, domain: domain) != nil
    }

    /// The generation in the name of `path` when it is one of this domain's images in our
    /// directory, else `nil`.
    func generation(of path: String, domain: DomainIdentity) -> UInt64? {
        parsedImage(path, domain: domain)?.generation
    }

    /// The generation and content-hash prefix of `path` when it is one of this domain's images
    /// directly in our directory.
    func parsedImage(_ path: String, domain: DomainIdentity) -> (generation: UInt64, hashPrefix: String)? {
        let directory =
            pipeline.images.directory.hasSuffix("/") ? pipeline.images.directory : pipeline.images.directory + "/"
        guard path.hasPrefix(directory) else { return nil }
        let name = String(path.dropFirst(directory.count))
        guard !name.contains("/"), let parsed = ImageNaming.parse(name), parsed.uuid == domain.uuid else { return nil }
        return (parsed.generation, parsed.hashPrefix)
    }

    /// Puts the old drive back after a failed SCSI attach, so the VM keeps a context image.
    func restoreDrive(_ drive: ContextDrive, source: String?, domain: DomainIdentity) async {
        do {
            try await retrying("re-attach the old drive") { () async throws(HypervisorError) in
                try await session.attachDrive(drive, source: source, scope: .live)
            }
            warnings.append("the new drive could not be attached; the old one was put back")
        } catch {
            logger.error("the old drive could not be put back", metadata: ["error": "\(error)"])
            warnings.append("the old drive could not be put back: \(error)")
        }
    }

    /// Removes an image that was built but never attached.
    func discard(_ path: String) async {
        do {
            try await pipeline.images.remove(path: path)
        } catch {
            warnings.append("the unused image \(path) could not be removed: \(error)")
        }
    }

    // MARK: - Logging

    func log(_ report: RunReport) {
        var metadata: Logger.Metadata = [
            "result": "\(report.result)",
            "duration.total_ms": "\(Self.ms(report.timings.total))",
        ]
        for phase in Phase.allCases {
            if let duration = report.timings.phases[phase] { metadata["duration.\(phase)_ms"] = "\(Self.ms(duration))" }
        }
        for (index, warning) in report.warnings.enumerated() {
            logger.warning("\(warning)", metadata: ["warning.index": "\(index)"])
        }
        switch report.outcome {
        case .applied(let applied):
            metadata["generation"] = "\(applied.generation)"
            metadata["content_hash"] = "\(applied.contentHash.prefix(12))"
            metadata["image"] = "\(applied.imagePath)"
            logger.notice("context applied", metadata: metadata)
        case .unchanged(let applied):
            metadata["generation"] = "\(applied.generation)"
            logger.info("context unchanged", metadata: metadata)
        case .skipped(let reason):
            metadata["reason"] = "\(reason.rawValue)"
            logger.info("run skipped", metadata: metadata)
        case .failed(let phase, let message, let transient):
            metadata["phase"] = "\(phase)"
            metadata["transient"] = "\(transient)"
            metadata["error"] = "\(message)"
            if let failureCode { metadata["libvirt.error_code"] = "\(failureCode)" }
            logger.error("run failed", metadata: metadata)
        }
    }

    static func ms(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return String(format: "%.2f", ms)
    }
}
