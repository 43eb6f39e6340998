import FoundationEssentials
import Logging
import RecontextConfiguration
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

/// The parts of the daemon that one configuration determines, replaced as a whole on reload.
public struct Runtime: Sendable {
    /// The configuration they were made from.
    public let configuration: DaemonConfiguration
    /// The image directory.
    public let images: ISOImageStore
    /// The pipeline.
    public let pipeline: ContextPipeline

    /// Builds the parts; creates the image directory if needed and reads the guest companion's
    /// packages (`context.companion-directory`). Blocking (`getgrnam`, `mkdir`, file reads):
    /// the daemon calls ``make(configuration:hypervisor:logger:)`` instead.
    /// - Throws: ``ImageStoreError`` when the image directory is unusable.
    /// - Parameter observer: told about each live insert (the host-guest channel), if any.
    public init(
        configuration: DaemonConfiguration, hypervisor: any Hypervisor, logger: Logger,
        observer: (any InsertObserver)? = nil
    ) throws(ImageStoreError) {
        self.configuration = configuration
        var group: gid_t?
        if let name = configuration.images.group {
            guard let entry = getgrnam(name) else {
                throw ImageStoreError("images.group: no group named '\(name)' on this host", isTransient: false)
            }
            group = entry.pointee.gr_gid
        }
        images = ISOImageStore(
            directory: configuration.images.directory, mode: mode_t(configuration.images.mode), group: group,
            maxImageBytes: configuration.images.maxSize)
        try images.prepare()
        var settings = PipelineSettings(configuration: configuration)
        settings.companion = CompanionPackages.load(from: configuration.context.companionDirectory)
        pipeline = ContextPipeline(
            hypervisor: hypervisor, images: images, settings: settings, logger: logger, observer: observer)
    }
}

extension Runtime {
    /// Builds the parts off the cooperative thread pool.
    /// - Throws: ``ImageStoreError`` when the image directory is unusable.
    public static func make(
        configuration: DaemonConfiguration, hypervisor: any Hypervisor, logger: Logger,
        observer: (any InsertObserver)? = nil
    ) async throws(ImageStoreError) -> Runtime {
        try await Blocking.run { () throws(ImageStoreError) -> Runtime in
            try Runtime(configuration: configuration, hypervisor: hypervisor, logger: logger, observer: observer)
        }
    }
}
