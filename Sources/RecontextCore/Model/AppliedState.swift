import FoundationEssentials

// MARK: - AppliedState

/// What recontextd last attached to a domain, recorded in the domain's metadata under
/// ``AppliedMetadata/namespaceURI`` so that anyone (and the next host) can compare desired and
/// applied content.
public struct AppliedState: Sendable, Hashable {
    /// The generation number: 1 for the first image, +1 for each new image.
    public var generation: UInt64
    /// The ``RenderedContext/contentHash`` of the attached image.
    public var contentHash: String
    /// The name of the host that attached it.
    public var host: String
    /// When it was attached, in whole seconds (sub-second parts are dropped so the record round-trips).
    public var time: Date
    /// The path of the image file on the host that attached it.
    public var imagePath: String
    /// The format of the image.
    public var format: ContextFormat
    /// What the guest acknowledged over the host-guest channel, if it did (it may lag behind
    /// ``generation``: a run keeps the previous acknowledgement until the guest sends a new one).
    public var guest: GuestApplied?

    /// Creates a record; `time` is truncated to whole seconds.
    /// - Parameters:
    ///   - generation: The generation number.
    ///   - contentHash: The content hash of the image.
    ///   - host: The host that attached it.
    ///   - time: When it was attached.
    ///   - imagePath: The image path.
    ///   - format: The image's format.
    ///   - guest: What the guest acknowledged, if anything.
    public init(
        generation: UInt64,
        contentHash: String,
        host: String,
        time: Date,
        imagePath: String,
        format: ContextFormat,
        guest: GuestApplied? = nil
    ) {
        self.generation = generation
        self.contentHash = contentHash
        self.host = host
        self.time = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
        self.imagePath = imagePath
        self.format = format
        self.guest = guest
    }
}
