import FoundationEssentials
import Logging

/// The recontextualization of one domain, in phases: resolve, skip if current, build, insert
/// (with an eject first in SCSI-replace mode), persist, record, remove the old image
/// (``PipelineRun``).
///
/// A run never leaves a domain worse off than it found it:
/// - the new image is built (atomically, under a new name) while the old one is still attached;
/// - a failed insert is retried with backoff; if it still fails, the old image is put back
///   where it was removed (SCSI replace) and the new file is deleted;
/// - the old image file is removed only after the new one is attached (live and config);
/// - when the attached image already holds the desired content, nothing is touched.
///
/// Runs of one domain must not overlap; ``DomainCoordinator`` guarantees that.
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
    /// Told right after each live insert (the host-guest channel), if anyone listens.
    public let observer: (any InsertObserver)?

    /// Creates a pipeline.
    public init(
        hypervisor: any Hypervisor, images: any ImageStore, settings: PipelineSettings,
        sleeper: any Sleeper = ClockSleeper(), logger: Logger, observer: (any InsertObserver)? = nil
    ) {
        self.hypervisor = hypervisor
        self.images = images
        self.settings = settings
        self.sleeper = sleeper
        self.logger = logger
        self.observer = observer
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
            defaultInstanceID: settings.defaultInstanceID, companion: settings.companion)
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

    // MARK: - Plan

    /// What a run would do for a domain: keep the attached image, or build the next generation.
    /// The daemon's runs, `recontextd render` and `recontextd status` all decide with this.
    public enum Plan: Sendable, Hashable {
        /// The attached image is ours and holds the desired content (its name carries the hash).
        case keep(generation: UInt64, path: String)
        /// A new image: its generation, its file name and its generation record.
        case build(generation: UInt64, name: String, record: RenderedFile)

        /// The generation the domain has (keep) or gets (build).
        public var generation: UInt64 {
            switch self {
            case .keep(let generation, _), .build(let generation, _, _): generation
            }
        }
    }

    /// The plan for a domain whose desired state is `desired`. Pure: reads nothing.
    /// - Parameter reuseAttached: `false` plans a new image even when the attached one is current
    ///   (its file is gone).
    public func plan(for snapshot: DomainSnapshot, _ desired: Desired, reuseAttached: Bool = true) -> Plan {
        let attached = desired.drive.source.flatMap { ImageNaming.parse(path: $0, directory: images.directory) }
        if reuseAttached, let attached, attached.uuid == snapshot.identity.uuid,
            desired.context.contentHash.hasPrefix(attached.hashPrefix), let path = desired.drive.source
        {
            return .keep(generation: attached.generation, path: path)
        }
        // Past both the recorded generation and the one attached: the record may be stale or
        // missing, and reusing the attached image's name would overwrite it.
        let attachedGeneration = attached.flatMap { $0.uuid == snapshot.identity.uuid ? $0.generation : nil } ?? 0
        let generation = max(desired.applied?.generation ?? 0, attachedGeneration) + 1
        return .build(
            generation: generation,
            name: ImageNaming.name(
                domain: snapshot.identity, generation: generation, contentHash: desired.context.contentHash),
            record: ContextRenderer.generationRecord(
                generation: generation, host: settings.host.name, contentHash: desired.context.contentHash,
                domain: snapshot.identity))
    }

    /// Whether the domain runs what it should: the attached image is current and the applied
    /// record says so, from this host.
    public func isInSync(_ snapshot: DomainSnapshot, _ desired: Desired) -> Bool {
        guard case .keep(let generation, let path) = plan(for: snapshot, desired), let applied = desired.applied
        else { return false }
        return applied.contentHash == desired.context.contentHash && applied.host == settings.host.name
            && applied.imagePath == path && applied.generation == generation
    }

    // MARK: - Run

    /// Runs the pipeline for one domain.
    ///
    /// Never throws: every outcome, failures included, is in the report, and logged (one notice
    /// per completed run with its phase timings, warnings for retries, errors for failures).
    /// - Parameter eventTime: when the event that asked for the run was received (for the observer).
    public func run(
        uuid: String, trigger: Trigger, runID: String = RunID.make(), eventTime: ContinuousClock.Instant? = nil
    ) async -> RunReport {
        let run = PipelineRun(pipeline: self, uuid: uuid, trigger: trigger, runID: runID)
        run.eventTime = eventTime
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

// MARK: - The guest's acknowledgement in the metadata

extension ContextPipeline {
    /// Writes the guest's acknowledgement into the domain's applied record (live, and config when
    /// persistent), read and rewritten in one go so that a run's record is never rolled back:
    /// nothing is written unless the record still names `guest.generation`.
    /// - Returns: false when the record names another generation (a newer run) or is absent.
    /// - Throws: ``HypervisorError`` from the read or the write.
    public func recordGuest(_ guest: GuestApplied, uuid: String) async throws(HypervisorError) -> Bool {
        let session = try await hypervisor.session(for: uuid)
        let snapshot = try await session.snapshot()
        guard let xml = snapshot.appliedMetadata, var applied = try? AppliedMetadata.parse(xml),
            applied.generation == guest.generation
        else { return false }
        if applied.guest == guest { return true }
        applied.guest = guest
        try await session.setAppliedMetadata(
            AppliedMetadata.serialize(applied), scope: snapshot.isPersistent ? [.live, .config] : [.live])
        return true
    }
}
