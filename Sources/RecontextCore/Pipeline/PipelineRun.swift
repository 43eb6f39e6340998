import FoundationEssentials
import Logging

// MARK: - One run

/// One run of the pipeline for one domain, in its phases: resolve, skip if current, build,
/// insert, persist, record, remove the old image.
///
/// Each phase is a method; a phase that ends the run throws a ``RunEnd`` (skipped, unchanged or
/// failed with a ``RunError``). Every hypervisor call goes through the run's one domain session
/// and through ``step(_:_:_:)``: timed in its phase, retried on transient errors.
final class PipelineRun {
    let pipeline: ContextPipeline
    let uuid: String
    let trigger: Trigger
    let runID: String
    var logger: Logger
    var timings = PhaseTimings()
    var warnings: [String] = []
    var identity: DomainIdentity?
    /// The spec asks for the guest channel (known after resolve).
    var addsGuestChannel = false
    /// The error that ended the run, if one did (for the log).
    var failure: RunError?
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant
    /// When the event that asked for the run was received, if an event did.
    var eventTime: ContinuousClock.Instant?
    /// The run's one look-up of its domain, opened at the resolve phase and kept for the run.
    private var openedSession: (any DomainSession)?

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

    var settings: PipelineSettings { pipeline.settings }
    var images: any ImageStore { pipeline.images }

    /// The session every hypervisor call after the resolve phase goes through.
    var session: any DomainSession {
        guard let openedSession else { preconditionFailure("the domain session is opened at the resolve phase") }
        return openedSession
    }

    // MARK: - The run

    /// Runs the phases and reports what happened. Never throws.
    func execute() async -> RunReport {
        do throws(RunEnd) {
            let (snapshot, desired) = try await resolve()
            try await skipIfCurrent(snapshot, desired)
            guard
                case .build(let generation, let name, let generationRecord) = pipeline.plan(
                    for: snapshot, desired, reuseAttached: false)
            else { preconditionFailure("a plan that may not reuse the attached image builds") }
            try checkNotCancelled(before: .build)
            let newPath = try await build(name: name, record: generationRecord, desired)
            if Task.isCancelled { await discard(newPath) }
            try checkNotCancelled(before: .insert)
            let drive = try await insert(
                newPath, into: desired.drive, format: desired.context.format, snapshot: snapshot)
            if let insertedAt = timings.insertedAt {
                pipeline.observer?.inserted(
                    Insertion(
                        domain: snapshot.identity, generation: generation, contentHash: desired.context.contentHash,
                        insertedAt: insertedAt, eventTime: eventTime))
            }
            let persisted = await persist(newPath, drive: drive, snapshot: snapshot)
            let applied = AppliedState(
                generation: generation, contentHash: desired.context.contentHash, host: settings.host.name,
                time: Date(), imagePath: newPath, format: desired.context.format, guest: desired.applied?.guest)
            let recorded = persisted == .left ? false : await record(applied, snapshot: snapshot)
            guard recorded else {
                // Migrated away (or undefined) between the live insert and the bookkeeping. Its new
                // host runs its own pipeline; the old image may still be named by the definition it
                // took along, so it is left to image collection, which knows what is referenced.
                warnings.append(
                    "the domain left this host right after the new image went in (migrated away or undefined): "
                        + "its persistent definition and applied state were not written here")
                return report(.applied(applied))
            }
            if persisted == .done { await removeOld(desired.drive.source, newPath: newPath, domain: snapshot.identity) }
            return report(.applied(applied))
        } catch {
            switch error {
            case .skipped(let reason): return report(.skipped(reason))
            case .unchanged(let applied): return report(.unchanged(applied))
            case .failed(let failure):
                self.failure = failure
                return report(.failed(phase: failure.phase, message: failure.cause, transient: failure.isTransient))
            }
        }
    }

    func report(_ outcome: RunReport.Outcome) -> RunReport {
        timings.total = clock.now - started
        var report = RunReport(
            uuid: uuid, domain: identity, trigger: trigger, runID: runID, outcome: outcome, timings: timings,
            warnings: warnings)
        report.addsGuestChannel = addsGuestChannel
        return report
    }

    // MARK: - resolve

    /// Opens the domain session, reads the domain and renders what it should have attached.
    func resolve() async throws(RunEnd) -> (DomainSnapshot, ContextPipeline.Desired) {
        let start = clock.now
        defer { timings.phases[.resolve, default: .zero] += clock.now - start }
        let snapshot: DomainSnapshot
        do {
            snapshot = try await retrying("resolve") { () async throws(HypervisorError) in
                if openedSession == nil { openedSession = try await pipeline.hypervisor.session(for: uuid) }
                return try await session.snapshot()
            }
        } catch {
            if error.isGone { throw .skipped(.gone) }
            throw .failed(RunError(phase: .resolve, error))
        }
        identity = snapshot.identity
        logger[metadataKey: "domain.name"] = "\(snapshot.identity.name)"
        guard snapshot.state == .running || snapshot.state == .paused else { throw .skipped(.notRunning) }
        let desired: ContextPipeline.Desired?
        do {
            desired = try pipeline.desired(for: snapshot)
        } catch {
            throw .failed(RunError(phase: .resolve, cause: "\(error)", isTransient: false))
        }
        guard let desired else { throw .skipped(.notManaged) }
        addsGuestChannel = desired.spec.addsGuestChannel
        return (snapshot, desired)
    }

    // MARK: - build

    /// Builds the image (in process) and writes it atomically under its new name.
    func build(name: String, record: RenderedFile, _ desired: ContextPipeline.Desired) async throws(RunEnd) -> String {
        do {
            return try await timed(.build) { () async throws(ImageStoreError) in
                try await images.write(desired.context, record: record, name: name)
            }
        } catch {
            throw .failed(RunError(phase: .build, error))
        }
    }

    /// Stops before `phase` when the run was cancelled (the shutdown budget was spent): nothing
    /// has changed yet, so the old image stays attached.
    func checkNotCancelled(before phase: Phase) throws(RunEnd) {
        guard Task.isCancelled else { return }
        throw .failed(RunError(phase: phase, cause: "cancelled at shutdown before \(phase)", isTransient: true))
    }

    // MARK: - Steps: timed and retried

    /// One hypervisor operation of `phase`: timed in that phase, retried on transient errors.
    func step<T>(
        _ phase: Phase, _ operation: String, _ body: () async throws(HypervisorError) -> T
    ) async throws(HypervisorError) -> T {
        try await timed(phase) { () async throws(HypervisorError) in try await retrying(operation, body) }
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
}
