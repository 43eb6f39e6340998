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
