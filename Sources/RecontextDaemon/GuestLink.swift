import RecontextCore
import Synchronization

/// What reaches the channel service (``GuestChannelService``), in order.
enum GuestInbound: Sendable {
    /// A domain is arriving by migration (STARTED/MIGRATED): its port can be opened already.
    case arriving(uuid: String)
    /// A new image is in a domain's drive (from the pipeline).
    case inserted(Insertion)
    /// A run of a domain ended: what it left, and whether the domain asked for the channel.
    case finished(uuid: String, applied: AppliedState?, addChannel: Bool)
    /// A valid line from a domain's guest.
    case message(uuid: String, link: UInt64, GuestMessage)
    /// A domain's port ended.
    case ended(uuid: String, link: UInt64)
    /// A domain's guest flooded its port: close it until `until`.
    case flooded(uuid: String, link: UInt64, until: ContinuousClock.Instant)
    /// A flooded port may open again.
    case unmute(uuid: String)
}

/// One domain's open port, read on the transport's thread (libvirt's event loop) with bounded
/// work: at most ``readBudget`` bytes per wake-up (libvirt wakes it again while bytes are
/// queued, so other domains' ports get their turn), a line at a time through the framer, the
/// rate guard and the parser. Only valid messages and state changes leave it; drops are
/// counted here and in the metrics.
final class GuestLink: Sendable {
    /// Bytes read per wake-up at most.
    static let readBudget = 64 << 10
    /// Bytes per receive.
    static let chunk = 4096

    struct State {
        var port: (any GuestPort)?
        var framer = GuestLineFramer()
        var rateGuard: GuestChannelGuard
        var stopped = false
        /// A drain is in progress (on one thread at a time, or bytes could be reordered).
        var draining = false
        /// Bytes became readable during a drain: it goes round once more.
        var again = false
        var drops: [GuestLineError.Reason: Int] = [:]
        var lastDrop: GuestLineError?
    }

    let uuid: String
    /// Tells this port's messages from those of a port it replaced.
    let id: UInt64
    private let state: Mutex<State>
    private let deliver: @Sendable (GuestInbound) -> Void
    private let countDrop: @Sendable (GuestLineError.Reason) -> Void

    init(
        uuid: String, id: UInt64, limits: GuestChannelGuard.Limits,
        deliver: @escaping @Sendable (GuestInbound) -> Void,
        countDrop: @escaping @Sendable (GuestLineError.Reason) -> Void
    ) {
        self.uuid = uuid
        self.id = id
        self.state = Mutex(State(rateGuard: GuestChannelGuard(limits: limits)))
        self.deliver = deliver
        self.countDrop = countDrop
    }

    /// The port, once open (events before it are answered by the first read after it).
    func attach(_ port: any GuestPort) {
        state.withLock { $0.port = port }
    }

    /// The open port, unless stopped.
    var port: (any GuestPort)? {
        state.withLock { $0.stopped ? nil : $0.port }
    }

    /// Stops reading (the port is being closed).
    func stop() -> (any GuestPort)? {
        state.withLock { state in
            state.stopped = true
            defer { state.port = nil }
            return state.port
        }
    }

    /// Dropped lines by reason, and the last drop.
    var dropSummary: ([GuestLineError.Reason: Int], GuestLineError?) {
        state.withLock { ($0.drops, $0.lastDrop) }
    }

    /// The port's event (on the transport's thread).
    func handle(_ event: GuestPortEvent) {
        switch event {
        case .readable: drain()
        case .ended: finish()
        }
    }

    private func finish() {
        let first = state.withLock { state in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { deliver(.ended(uuid: uuid, link: id)) }
    }

    /// Reads what is queued, up to the budget. One drain at a time: a second caller (the attach
    /// and the event loop at once) only makes the running one go round again.
    func drain(now: @Sendable () -> ContinuousClock.Instant = { .now }) {
        let first = state.withLock { state in
            if state.draining {
                state.again = true
                return false
            }
            state.draining = true
            return true
        }
        guard first else { return }
        repeat {
            drainOnce(now: now)
        } while state.withLock { state in
            defer { state.again = false }
            if !state.again { state.draining = false }
            return state.again
        }
    }

    private func drainOnce(now: @Sendable () -> ContinuousClock.Instant) {
        var budget = Self.readBudget
        while budget > 0 {
            guard let port else { return }
            switch port.receive(maxBytes: Self.chunk) {
            case .bytes(let bytes):
                budget -= bytes.count
                if !process(bytes, at: now()) { return }
            case .wouldBlock: return
            case .end:
                finish()
                return
            }
        }
    }

    /// Frames, guards and parses `bytes`; false once the port is to be closed.
    private func process(_ bytes: [UInt8], at now: ContinuousClock.Instant) -> Bool {
        var messages: [GuestMessage] = []
        var dropped: [GuestLineError.Reason] = []
        let muteUntil: ContinuousClock.Instant? = state.withLock { state in
            for item in state.framer.feed(bytes) {
                let outcome: Result<GuestMessage, GuestLineError>
                if !state.rateGuard.admit(at: now) {
                    outcome = .failure(GuestLineError(.rateLimited))
                } else if case .line(let line) = item {
                    outcome = GuestProtocol.parse(line)
                } else {
                    outcome = .failure(GuestLineError(.oversized))
                }
                switch outcome {
                case .success(let message):
                    state.rateGuard.noteValid()
                    messages.append(message)
                case .failure(let error):
                    dropped.append(error.reason)
                    state.drops[error.reason, default: 0] += 1
                    state.lastDrop = error
                    if case .mute(let until) = state.rateGuard.noteDrop(at: now) {
                        state.stopped = true
                        return until
                    }
                }
            }
            return nil
        }
        for reason in dropped { countDrop(reason) }
        for message in messages { deliver(.message(uuid: uuid, link: id, message)) }
        if let muteUntil {
            deliver(.flooded(uuid: uuid, link: id, until: muteUntil))
            return false
        }
        return true
    }
}
