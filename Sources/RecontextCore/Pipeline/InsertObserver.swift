/// A new image went into a live domain's drive (the end of the insert phase).
public struct Insertion: Sendable, Hashable {
    /// The domain.
    public var domain: DomainIdentity
    /// The generation now in the drive.
    public var generation: UInt64
    /// Its content hash.
    public var contentHash: String
    /// When the insert ended.
    public var insertedAt: ContinuousClock.Instant
    /// When the event that asked for the run was received, if an event did.
    public var eventTime: ContinuousClock.Instant?

    /// Creates an insertion.
    public init(
        domain: DomainIdentity, generation: UInt64, contentHash: String, insertedAt: ContinuousClock.Instant,
        eventTime: ContinuousClock.Instant?
    ) {
        self.domain = domain
        self.generation = generation
        self.contentHash = contentHash
        self.insertedAt = insertedAt
        self.eventTime = eventTime
    }
}

/// Told about every insertion, right after the live insert and before the bookkeeping phases, so
/// that the host-guest channel can say "generation N is in the drive" at once.
///
/// Called on the run's task: it must return at once (hand the work to a task of its own).
public protocol InsertObserver: Sendable {
    /// A new image is in the drive.
    func inserted(_ insertion: Insertion)
}
