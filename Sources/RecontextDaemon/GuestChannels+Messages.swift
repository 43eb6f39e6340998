import FoundationEssentials
import Logging
import RecontextCore

/// What the guests say on their ports: hellos and acknowledgements (see ``GuestChannels``).
extension GuestChannels {
    /// When an acknowledgement came: its latency and its record's time are taken from here, also
    /// when it is judged later.
    struct Received {
        var instant: ContinuousClock.Instant
        var date: Date

        static var now: Received { Received(instant: .now, date: Date()) }
    }

    func received(_ message: GuestMessage, from uuid: String, group: inout DiscardingTaskGroup) async {
        switch message {
        case .hello(let hello):
            let level: Logger.Level = channels[uuid]?.companionVersion == hello.version ? .debug : .info
            channels[uuid]?.companionVersion = hello.version
            logger.log(
                level: level, "guest companion said hello",
                metadata: [
                    "domain.uuid": "\(uuid)", "guest.version": "\(hello.version)",
                    "guest.generation": "\(hello.applied)",
                ])
            if let applied = await context.coordinator.applied(of: uuid),
                applied.generation != hello.applied || applied.contentHash != hello.contentHash
            {
                await send(uuid, generation: applied.generation, hash: applied.contentHash)
            }
        case .applied(let ack):
            await acknowledged(ack, from: uuid, group: &group)
        }
        await publish(uuid)
    }

    /// Hands `ack` to the coordinator and logs, counts and shows its verdict.
    ///
    /// The host says "generation N" right after the insert, before its run has written what it
    /// inserted (persist, record): a guest that answers within those milliseconds names a
    /// generation the coordinator does not know yet. Such an ack, of exactly the generation and
    /// hash this host announced, is kept (one per domain, the last) and judged again when the run
    /// ends (``handle(_:group:)``, `.finished`), with the time it came.
    func acknowledged(
        _ ack: GuestAck, from uuid: String, group: inout DiscardingTaskGroup, received: Received = .now
    ) async {
        let (verdict, record) = await context.coordinator.acknowledge(uuid, ack: ack, at: received.date)
        // Rejected although it names what this host announced: the run has not recorded it yet.
        if case .rejected = verdict, let insertion = channels[uuid]?.lastInsertion,
            insertion.generation == ack.generation, insertion.contentHash == ack.contentHash
        {
            channels[uuid]?.earlyAck = (ack, received)
            logger.debug(
                "guest acknowledged before the run's bookkeeping ended; judged when it ends",
                metadata: ["domain.uuid": "\(uuid)", "guest.generation": "\(ack.generation)"])
            return
        }
        var latency: Duration?
        if case .accepted = verdict, let insertion = channels[uuid]?.lastInsertion,
            insertion.generation == ack.generation
        {
            latency = received.instant - (insertion.eventTime ?? insertion.insertedAt)
            channels[uuid]?.lastInsertion = nil // a repeated ack is not measured twice
        }
        context.metrics.guest.recordAck(verdict: verdict, result: ack.result, latency: latency)
        channels[uuid]?.lastAck = GuestStatusStore.Record.Ack(
            generation: ack.generation, result: ack.result.rawValue, verdict: verdict.label,
            hooks: ack.hooks.map(\.description), failedHooks: ack.failedHooks.map(\.name),
            guestMilliseconds: ack.milliseconds, latencyMilliseconds: latency?.milliseconds, time: received.date)
        var metadata: Logger.Metadata = [
            "domain.uuid": "\(uuid)", "guest.generation": "\(ack.generation)", "guest.result": "\(ack.result.rawValue)",
            "guest.verdict": "\(verdict.label)", "guest.trigger": "\(ack.trigger)",
            "guest.hooks_failed": "\(ack.failedHooks.map(\.description).joined(separator: ","))",
        ]
        if let latency { metadata["guest.latency_ms"] = "\(Int(latency.milliseconds.rounded()))" }
        if let milliseconds = ack.milliseconds { metadata["guest.apply_ms"] = "\(milliseconds)" }
        switch verdict {
        case .accepted:
            guard let record, let guest = record.guest else {
                logger.debug("guest repeated its acknowledgement", metadata: metadata)
                return
            }
            let text = latency.map { " in \(Int($0.milliseconds.rounded())) ms" } ?? ""
            let level: Logger.Level = ack.result == .ok ? .notice : .warning
            logger.log(level: level, "guest applied generation \(ack.generation)\(text)", metadata: metadata)
            recordInMetadata(guest, uuid: uuid, group: &group)
        case .stale:
            logger.debug("guest acknowledged an earlier generation", metadata: metadata)
        case .rejected(let why):
            metadata["guest.rejected"] = "\(why)"
            let now = ContinuousClock.now
            if let last = channels[uuid]?.lastWarning, now - last < Self.warningInterval {
                logger.debug("guest acknowledgement rejected", metadata: metadata)
            } else {
                channels[uuid]?.lastWarning = now
                logger.warning(
                    "guest acknowledgement rejected (further ones within a minute are logged at debug)",
                    metadata: metadata)
            }
        }
    }

    /// Writes the accepted acknowledgement into the domain's applied record, after any run of the
    /// domain (the domain lock), on a task of its own: a slow libvirt call never holds the others.
    func recordInMetadata(_ guest: GuestApplied, uuid: String, group: inout DiscardingTaskGroup) {
        let context = self.context
        group.addTask {
            let pipeline = context.currentRuntime.pipeline
            let result: Result<Bool, HypervisorError> = await context.lock.withLock(uuid) {
                do throws(HypervisorError) {
                    return .success(try await pipeline.recordGuest(guest, uuid: uuid))
                } catch {
                    return .failure(error)
                }
            }
            if case .failure(let error) = result, !error.isGone {
                context.logger.warning(
                    "the guest's acknowledgement could not be recorded in the domain's metadata",
                    metadata: ["domain.uuid": "\(uuid)", "error": "\(error)"])
            }
        }
    }
}
