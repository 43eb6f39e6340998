import FoundationEssentials
import Logging

/// Removes images that no domain on this host refers to any more.
///
/// Temporary files of writes that were interrupted (the daemon was killed) count as images here.
/// An image is removed only when all of these hold: its name is one of ours (``ImageNaming``),
/// no domain's live or persistent definition names it, it is older than the grace period (so an
/// image being attached right now is never taken), and, when the directory is shared by several
/// hosts, its domain is known on this host (an image of a domain running elsewhere belongs to that
/// host's recontextd).
public struct ImageCollector: Sendable {
    /// The hypervisor whose domains are asked which images they use.
    public let hypervisor: any Hypervisor
    /// The image directory.
    public let images: any ImageStore
    /// Images younger than this are kept.
    public let grace: Duration
    /// Whether other hosts use the same directory (`images.shared`).
    public let sharedDirectory: Bool
    /// Where removals and failures are logged.
    public let logger: Logger

    /// Creates a collector.
    public init(
        hypervisor: any Hypervisor, images: any ImageStore, grace: Duration = .seconds(120),
        sharedDirectory: Bool = false,
        logger: Logger
    ) {
        self.hypervisor = hypervisor
        self.images = images
        self.grace = grace
        self.sharedDirectory = sharedDirectory
        self.logger = logger
    }

    /// Removes unreferenced images; returns the paths removed.
    @discardableResult
    public func collect(now: Date = Date()) async throws -> [String] {
        let stored = try await images.storedImages()
        guard !stored.isEmpty else { return [] }
        let referenced = try await hypervisor.referencedSources()
        let known = sharedDirectory ? try await hypervisor.knownDomains() : []
        let graceSeconds = Double(grace.components.seconds)
        var removed: [String] = []
        for image in stored where !referenced.contains(image.path) {
            guard now.timeIntervalSince(image.modified) >= graceSeconds else { continue }
            if sharedDirectory {
                guard let uuid = (ImageNaming.parse(image.name) ?? ImageNaming.parseTemporary(image.name))?.uuid,
                    known.contains(uuid)
                else { continue }
            }
            do {
                try await images.remove(path: image.path)
                removed.append(image.path)
                logger.info("removed unreferenced image", metadata: ["image": "\(image.path)"])
            } catch {
                logger.warning(
                    "could not remove unreferenced image", metadata: ["image": "\(image.path)", "error": "\(error)"])
            }
        }
        return removed
    }
}
