import FoundationEssentials
import Logging
import RecontextCore
import ServiceLifecycle

/// The host end of every domain's guest channel (README, "Host-guest channel").
///
/// One task handles everything in ``GuestChannelInbox`` in order: it opens a domain's port when
/// a run leaves the domain managed or inserts a new image (adding the channel device first when
/// the domain asks for it), sends "generation N" after each insert, on opening and in reply to
/// `hello`, and hands each `applied` line to the ``DomainCoordinator``, which judges it against
/// what this host inserted and keeps the record. Ports are read on libvirt's event-loop thread
/// (``GuestLink``), bounded; a guest's lines can only reach its own domain's record.
public struct GuestChannelService: Service {
    /// The shared state.
    public let context: DaemonContext
    /// Opens the ports.
    public let opener: any GuestPortOpener

    /// Creates the service.
    public init(context: DaemonContext, opener: any GuestPortOpener) {
        self.context = context
        self.opener = opener
    }

    public func run() async throws {
        let channels = GuestChannels(context: context, opener: opener)
        await withDiscardingTaskGroup { group in
            for await item in context.guestInbox.stream.cancelOnGracefulShutdown() {
                await channels.handle(item, group: &group)
            }
            await channels.closeAll()
            group.cancelAll()
        }
    }
}

/// The channel service's state: each domain's port and what it said (transport state; the
/// guest's accepted record lives in the coordinator). Used by one task only.
final class GuestChannels {
    struct Channel {
        var link: GuestLink?
        var mutedUntil: ContinuousClock.Instant?
        var detail: String?
        var addTried = false
        var companionVersion: String?
        var lastInsertion: Insertion?
        var sentGeneration: UInt64?
        var lastAck: GuestStatusStore.Record.Ack?
        /// An ack of the generation just announced that came before the run's bookkeeping ended
        /// (see ``acknowledged(_:from:group:received:)``): judged again when the run ends.
        var earlyAck: (ack: GuestAck, received: Received)?
        /// Lines dropped on the ports closed before (the open port counts its own).
        var drops: [GuestLineError.Reason: Int] = [:]
        var lastDrop: GuestLineError?
        /// When a warning about this guest was last logged (a guest cannot flood the journal).
        var lastWarning: ContinuousClock.Instant?
    }

    /// When an acknowledgement came: its latency and its record's time are taken from here, also
    /// when it is judged later.
    struct Received {
        var instant: ContinuousClock.Instant
        var date: Date

        static var now: Received { Received(instant: .now, date: Date()) }
    }

    /// At most one warning per guest in this interval; the rest are counted in the metrics.
    static let warningInterval: Duration = .seconds(60)

    let context: DaemonContext
    let opener: any GuestPortOpener
    let store: GuestStatusStore
    let limits = GuestChannelGuard.Limits()
    var channels: [String: Channel] = [:]
    var nextLinkID: UInt64 = 0
    var logger: Logger { context.logger }

    init(context: DaemonContext, opener: any GuestPortOpener) {
        self.context = context
        self.opener = opener
        store = GuestStatusStore(stateDirectory: context.options.stateDirectory)
    }

    func handle(_ item: GuestInbound, group: inout DiscardingTaskGroup) async {
        switch item {
        case .arriving(let uuid):
            if channels[uuid]?.link == nil { _ = await open(uuid) }
        case .inserted(let insertion):
            let uuid = insertion.domain.uuid
            channels[uuid, default: Channel()].lastInsertion = insertion
            if channels[uuid]?.link == nil {
                guard await open(uuid) else { return await publish(uuid) }
            }
            await send(uuid, generation: insertion.generation, hash: insertion.contentHash)
        case .finished(let uuid, let applied, let addChannel):
            guard let applied else { return await forget(uuid) }
            if let early = channels[uuid]?.earlyAck {
                channels[uuid]?.earlyAck = nil
                await acknowledged(early.ack, from: uuid, group: &group, received: early.received)
                await publish(uuid)
            }
            if let link = channels[uuid]?.link {
                // Still open, unless libvirt was reconnected under it: then it is reopened.
                guard link.port?.isOpen == false else { return }
                await close(uuid, detail: "closed: the libvirt connection was replaced")
            }
            if await open(uuid, addChannel: addChannel) {
                await send(uuid, generation: applied.generation, hash: applied.contentHash)
            } else {
                await publish(uuid)
            }
        case .message(let uuid, let id, let message):
            guard channels[uuid]?.link?.id == id else { return }
            await received(message, from: uuid, group: &group)
        case .ended(let uuid, let id):
            guard channels[uuid]?.link?.id == id else { return }
            await close(uuid, detail: "closed: the port ended (the domain stopped or left, or the connection closed)")
            await publish(uuid)
            // The next arrival, insert or run opens it again; until then nothing is kept, so a host
            // that sees thousands of domains pass keeps records of the ports open now only.
            channels[uuid] = nil
        case .flooded(let uuid, let id, let until):
            guard channels[uuid]?.link?.id == id else { return }
            logger.warning(
                "guest flooded its channel; closing it for a while",
                metadata: ["domain.uuid": "\(uuid)", "guest.muted_for": "\(limits.muteFor)"])
            await close(uuid, detail: "muted: the guest sent only invalid or excess lines")
            channels[uuid]?.mutedUntil = until
            await publish(uuid, state: "muted")
            let sleeper = context.sleeper
            let inbox = context.guestInbox
            let wait = limits.muteFor
            group.addTask {
                do { try await sleeper.sleep(for: wait) } catch { return }
                inbox.yield(.unmute(uuid: uuid))
            }
        case .unmute(let uuid):
            channels[uuid]?.mutedUntil = nil
            if let applied = await context.coordinator.applied(of: uuid), await open(uuid) {
                await send(uuid, generation: applied.generation, hash: applied.contentHash)
            }
        }
        await updateGauges()
    }

    // MARK: - Messages

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
        if case .rejected = verdict, let insertion = channels[uuid]?.lastInsertion,
            insertion.generation == ack.generation, insertion.contentHash == ack.contentHash,
            (await context.coordinator.applied(of: uuid)?.generation ?? 0) < ack.generation
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

    // MARK: - Ports

    /// Opens the domain's port unless it is muted; adds the channel device first when the domain
    /// asks for it and has none. False when there is no port (the reason is kept for `status`).
    func open(_ uuid: String, addChannel: Bool = false) async -> Bool {
        var channel = channels[uuid] ?? Channel()
        defer { channels[uuid] = channel }
        if channel.link != nil { return true }
        if channel.mutedUntil != nil { return false }
        nextLinkID += 1
        let link = GuestLink(
            uuid: uuid, id: nextLinkID, limits: limits, deliver: { [inbox = context.guestInbox] in inbox.yield($0) },
            countDrop: { [metrics = context.metrics] in metrics.guest.recordDrop($0) })
        do {
            let port: any GuestPort
            do {
                port = try await opener.openGuestPort(uuid: uuid) { link.handle($0) }
            } catch  where error.kind == .unsupported && addChannel && !channel.addTried {
                channel.addTried = true
                let addition = try await opener.addGuestChannel(uuid: uuid)
                logger.notice(
                    "added the guest channel to the domain",
                    metadata: ["domain.uuid": "\(uuid)", "guest.channel_added": "\(addition)"])
                guard addition == .live else {
                    channel.detail =
                        "absent: added to the definition, the port appears at the next boot "
                        + "(no virtio-serial controller to hot-plug it onto)"
                    return false
                }
                port = try await opener.openGuestPort(uuid: uuid) { link.handle($0) }
            }
            link.attach(port)
            channel.link = link
            channel.detail = nil
            link.drain()
            logger.debug("guest port open", metadata: ["domain.uuid": "\(uuid)"])
            return true
        } catch {
            logger.debug("guest port not opened", metadata: ["domain.uuid": "\(uuid)", "error": "\(error)"])
            channel.detail =
                error.kind == .unsupported
                ? "absent: the domain has no channel \(GuestProtocol.portName)" : "error: \(error)"
            return false
        }
    }

    func send(_ uuid: String, generation: UInt64, hash: String) async {
        guard let link = channels[uuid]?.link, let port = link.port else { return }
        do {
            try await port.send(Array(GuestProtocol.generationLine(generation, hash: hash).utf8))
            channels[uuid]?.sentGeneration = generation
        } catch {
            logger.info(
                "could not tell the guest about its new generation",
                metadata: ["domain.uuid": "\(uuid)", "error": "\(error)"])
            await close(uuid, detail: "error: \(error)")
        }
        await publish(uuid)
    }

    func close(_ uuid: String, detail: String) async {
        guard let link = channels[uuid]?.link else { return }
        let (drops, lastDrop) = link.dropSummary
        channels[uuid]?.drops.merge(drops, uniquingKeysWith: +)
        if let lastDrop { channels[uuid]?.lastDrop = lastDrop }
        channels[uuid]?.link = nil
        channels[uuid]?.detail = detail
        await link.stop()?.close()
    }

    /// The domain left this host (or is no longer managed): close its port, drop its record.
    func forget(_ uuid: String) async {
        await close(uuid, detail: "closed")
        guard channels.removeValue(forKey: uuid) != nil else { return }
        let store = self.store
        await Blocking.run { store.remove(uuid) }
    }

    func closeAll() async {
        for uuid in Array(channels.keys) { await close(uuid, detail: "closed: recontextd stopped") }
    }

    // MARK: - Status and gauges

    /// Writes the domain's status file (advisory: a failure is logged at debug).
    func publish(_ uuid: String, state explicit: String? = nil) async {
        guard let channel = channels[uuid] else { return }
        let (open, openLast) = channel.link?.dropSummary ?? ([:], nil)
        let drops = channel.drops.merging(open, uniquingKeysWith: +)
        let lastDrop = openLast ?? channel.lastDrop
        let state =
            explicit
            ?? (channel.link != nil
                ? "open" : (channel.detail?.split(separator: ":").first.map(String.init) ?? "closed"))
        let record = GuestStatusStore.Record(
            uuid: uuid, channel: state, channelDetail: channel.link != nil ? nil : channel.detail,
            companionVersion: channel.companionVersion, sentGeneration: channel.sentGeneration,
            lastAck: channel.lastAck,
            dropped: Dictionary(uniqueKeysWithValues: drops.map { ($0.key.rawValue, $0.value) }),
            lastDrop: lastDrop?.description, time: Date())
        let store = self.store
        let logger = self.logger
        await Blocking.run {
            do { try store.write(record) } catch {
                logger.debug("guest status file not written", metadata: ["error": "\(error)"])
            }
        }
    }

    func updateGauges() async {
        let open = Set(channels.filter { $0.value.link != nil }.keys)
        let lagging = await context.coordinator.laggingGuests(among: open)
        context.metrics.guest.recordChannels(open: open.count, lagging: lagging)
    }
}
