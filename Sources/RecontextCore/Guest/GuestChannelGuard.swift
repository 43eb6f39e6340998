/// The rate rules of one guest's channel: a token bucket over the lines read (valid or not), and
/// a flood rule that closes the port for a while when a guest sends only what is dropped.
///
/// Pure: the caller passes the time, so tests drive it with made-up instants.
public struct GuestChannelGuard: Sendable {
    /// The limits.
    public struct Limits: Sendable, Hashable {
        /// Lines read at once before the rate applies.
        public var burst: Double
        /// Lines per second on average.
        public var perSecond: Double
        /// Dropped lines with nothing valid in between that close the port.
        public var floodDrops: Int
        /// How long a flooded port stays closed.
        public var muteFor: Duration

        /// The defaults of protocol 1 (README, "Host-guest channel").
        public init(burst: Double = 8, perSecond: Double = 2, floodDrops: Int = 64, muteFor: Duration = .seconds(60)) {
            self.burst = burst
            self.perSecond = perSecond
            self.floodDrops = floodDrops
            self.muteFor = muteFor
        }
    }

    /// What to do with the port after a drop.
    public enum Verdict: Sendable, Hashable {
        /// Keep reading.
        case keepOpen
        /// Close the port until the given instant.
        case mute(until: ContinuousClock.Instant)
    }

    /// The limits.
    public let limits: Limits
    private var tokens: Double
    private var refilledAt: ContinuousClock.Instant?
    private var dropsSinceValid = 0

    /// Creates a guard with a full bucket.
    public init(limits: Limits = Limits()) {
        self.limits = limits
        tokens = limits.burst
    }

    /// Takes one token for a line read at `now`; false when the line is over the rate.
    public mutating func admit(at now: ContinuousClock.Instant) -> Bool {
        if let refilledAt {
            let elapsed = now - refilledAt
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            tokens = min(limits.burst, tokens + max(0, seconds) * limits.perSecond)
        }
        refilledAt = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// A line was valid: the flood count starts over.
    public mutating func noteValid() {
        dropsSinceValid = 0
    }

    /// A line was dropped at `now` (any reason); says whether to close the port.
    public mutating func noteDrop(at now: ContinuousClock.Instant) -> Verdict {
        dropsSinceValid += 1
        guard dropsSinceValid >= limits.floodDrops else { return .keepOpen }
        dropsSinceValid = 0
        tokens = limits.burst
        refilledAt = nil
        return .mute(until: now + limits.muteFor)
    }
}
