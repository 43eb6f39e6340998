/// The phases of a pipeline run: the four of the swap (resolve, eject, build, insert), then the
/// bookkeeping after the new image is in (persist, record).
public enum Phase: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Look the domain up, read its metadata and drives, render the desired content.
    case resolve
    /// Eject the old media, or detach the old SCSI drive.
    case eject
    /// Build the new image (in process) and write it atomically.
    case build
    /// Insert the new media, or attach the new drive (the live domain).
    case insert
    /// Flush the new image to disk, then make the persistent definition name it (libvirt rewrites
    /// the domain's XML file).
    case persist
    /// Record the applied state in the domain's metadata.
    case record

    public var description: String { rawValue }
}

/// How long each phase of a run took.
public struct PhaseTimings: Sendable, Hashable {
    /// Per phase; a phase that did not run is absent.
    public var phases: [Phase: Duration] = [:]
    /// From the start of the run to its end.
    public var total: Duration = .zero
    /// When the new image was in the live domain (the end of a successful insert), if it was.
    public var insertedAt: ContinuousClock.Instant?

    /// Creates empty timings.
    public init() {}

    /// The duration of `phase`, zero when it did not run.
    public subscript(phase: Phase) -> Duration { phases[phase] ?? .zero }
}

/// What a pipeline run did.
public struct RunReport: Sendable, Hashable {
    /// The result.
    public enum Outcome: Sendable, Hashable {
        /// A new image was built and attached.
        case applied(AppliedState)
        /// The attached image already holds the desired content.
        case unchanged(AppliedState)
        /// Nothing to do, for the reason given.
        case skipped(SkipReason)
        /// The run failed in `phase`; the previous image stays attached.
        case failed(phase: Phase, message: String, transient: Bool)
    }

    /// Why a run did nothing.
    public enum SkipReason: String, Sendable, Hashable {
        /// The domain is gone from this host (undefined or migrated away).
        case gone
        /// The domain is not running or paused.
        case notRunning = "not-running"
        /// The domain has not opted in (and the configuration does not manage all domains).
        case notManaged = "not-managed"
    }

    /// The domain's UUID (always known) and identity (when it was resolved).
    public var uuid: String
    /// Name and UUID, when resolved.
    public var domain: DomainIdentity?
    /// Why the run started.
    public var trigger: Trigger
    /// A short id for this run, in every log line of it.
    public var runID: String
    /// The result.
    public var outcome: Outcome
    /// Phase timings.
    public var timings: PhaseTimings
    /// Warnings that did not fail the run (e.g. the old image could not be removed).
    public var warnings: [String]
    /// The domain's spec asks for the host-guest channel's port (`channel="add"`).
    public var addsGuestChannel = false

    /// Creates a report.
    public init(
        uuid: String, domain: DomainIdentity?, trigger: Trigger, runID: String, outcome: Outcome,
        timings: PhaseTimings, warnings: [String] = []
    ) {
        self.uuid = uuid
        self.domain = domain
        self.trigger = trigger
        self.runID = runID
        self.outcome = outcome
        self.timings = timings
        self.warnings = warnings
    }

    /// A one-word result: applied, unchanged, skipped or failed.
    public var result: String {
        switch outcome {
        case .applied: "applied"
        case .unchanged: "unchanged"
        case .skipped: "skipped"
        case .failed: "failed"
        }
    }

    /// True when the run failed and a later retry may succeed.
    public var isRetryable: Bool {
        if case .failed(_, _, let transient) = outcome { return transient }
        return false
    }
}
