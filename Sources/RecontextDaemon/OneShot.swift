import FoundationEssentials
import ISOBuilder
import Logging
import RecontextConfiguration
import RecontextCore
import Virt

#if canImport(Glibc)
    import Glibc
#endif

/// What `recontextd status` shows for one domain.
public struct DomainStatus: Codable, Sendable, Hashable {
    /// Name and UUID.
    public var name: String
    public var uuid: String
    /// `running`, `paused`, ...
    public var state: String
    /// Whether recontextd manages it.
    public var managed: Bool
    /// The desired content's hash, or nil when it cannot be rendered (see `problem`).
    public var desiredHash: String?
    /// The desired format.
    public var format: String?
    /// The applied state recorded in the domain's metadata.
    public var appliedGeneration: UInt64?
    public var appliedHash: String?
    public var appliedHost: String?
    public var appliedTime: Date?
    /// The image the context drive holds now.
    public var attachedImage: String?
    /// Desired and applied agree (same content, this host, image attached).
    public var inSync: Bool
    /// Why the desired state cannot be computed (bad metadata, template error, no drive).
    public var problem: String?
    /// The last run recorded on this host.
    public var lastRun: StatusStore.Record?
    /// What the guest acknowledged over the host-guest channel (from the applied record: it
    /// migrates with the domain).
    public var guestGeneration: UInt64?
    public var guestResult: String?
    public var guestTime: Date?
    /// The channel as the daemon on this host sees it (port, companion, last ack, drops).
    public var guestChannel: GuestStatusStore.Record?

    /// The GUEST column: the guest's generation and result, "lags" when it is behind, or the
    /// channel's state.
    public var guestSummary: String {
        if let generation = guestGeneration {
            let lag = appliedGeneration.map { $0 > generation ? " (lags)" : "" } ?? ""
            return "g\(generation) \(guestResult ?? "?")\(lag)"
        }
        return guestChannel?.channel ?? "-"
    }
}

/// The one-shot commands (`apply`, `render`, `status`), sharing the daemon's code paths.
public struct OneShot: Sendable {
    /// Options (config file, URI override, state directory).
    public let options: DaemonOptions
    /// The loaded configuration.
    public let configuration: DaemonConfiguration
    /// The libvirt adapter, connected.
    public let hypervisor: LibvirtHypervisor
    /// Pipeline and images.
    public let runtime: Runtime
    let logger: Logger

    /// Loads nothing itself: give it a validated configuration. Connects to libvirt (off the
    /// cooperative pool, like every blocking call here).
    public init(options: DaemonOptions, configuration: DaemonConfiguration, logger: Logger) async throws {
        self.options = options
        self.configuration = configuration
        self.logger = logger
        let hypervisor = LibvirtHypervisor(uri: configuration.libvirt.uri)
        try await Blocking.run { () throws(VirtError) in _ = try hypervisor.connect() }
        self.hypervisor = hypervisor
        runtime = try Runtime(configuration: configuration, hypervisor: hypervisor, logger: logger)
    }

    /// The UUID of a domain given by name or UUID.
    public func resolve(_ nameOrUUID: String) async throws -> DomainReference {
        try await hypervisor.withConnection("resolve \(nameOrUUID)") { connection throws(VirtError) in
            if let domain = try? connection.domain(uuid: nameOrUUID) { return domain.reference }
            return try connection.domain(named: nameOrUUID).reference
        }
    }

    /// `recontextd apply DOMAIN`: one pipeline run now, under the same per-domain lock as the daemon.
    public func apply(_ nameOrUUID: String) async throws -> RunReport {
        let domain = try await resolve(nameOrUUID)
        let lock = DomainLock(stateDirectory: options.stateDirectory)
        let pipeline = runtime.pipeline
        let report = await lock.withLock(domain.uuid) { await pipeline.run(uuid: domain.uuid, trigger: .manual) }
        StatusStore(stateDirectory: options.stateDirectory).record(report)
        return report
    }

    /// `recontextd render DOMAIN --output FILE`: the image that would be attached now, written to
    /// `output`. Changes nothing on the domain.
    /// - Returns: the rendered content and the generation the image carries.
    public func render(_ nameOrUUID: String, output: String) async throws -> (RenderedContext, UInt64) {
        let domain = try await resolve(nameOrUUID)
        let snapshot = try await hypervisor.snapshot(of: domain.uuid)
        guard let desired = try runtime.pipeline.desired(for: snapshot) else {
            throw ContextError(
                .missing, domain: domain.name, field: "", "the domain is not managed (no context metadata)")
        }
        // The generation a run would give it now: the daemon's own plan.
        let plan = runtime.pipeline.plan(for: snapshot, desired)
        let generation = plan.generation
        let record = ContextRenderer.generationRecord(
            generation: generation, host: configuration.host.name, contentHash: desired.context.contentHash,
            domain: snapshot.identity)
        var image = ISOImage(volumeID: desired.context.volumeID)
        for file in desired.context.files + [record] {
            image.addFile(at: file.path, contents: file.contents, mode: mode_t(file.mode))
        }
        let builder = ISOBuilder(maxImageBytes: configuration.images.maxSize)
        let finished = image
        _ = try await Blocking.run { () throws(ISOBuilderError) -> Int in
            try builder.writeImage(finished, to: output, mode: 0o600)
        }
        return (desired.context, generation)
    }

    /// `recontextd status`: desired against applied for every running domain on this host.
    public func status() async throws -> [DomainStatus] {
        let records = StatusStore(stateDirectory: options.stateDirectory).all()
        let guests = GuestStatusStore(stateDirectory: options.stateDirectory).all()
        var result: [DomainStatus] = []
        for identity in try await hypervisor.activeDomains().sorted(by: { $0.name < $1.name }) {
            guard let snapshot = try? await hypervisor.snapshot(of: identity.uuid) else { continue }
            var status = DomainStatus(
                name: identity.name, uuid: identity.uuid, state: "\(snapshot.state)", managed: false, inSync: false,
                lastRun: records[identity.uuid])
            status.guestChannel = guests[identity.uuid]
            do {
                if let desired = try runtime.pipeline.desired(for: snapshot) {
                    status.managed = true
                    status.desiredHash = desired.context.contentHash
                    status.format = desired.context.format.rawValue
                    status.attachedImage = desired.drive.source
                    if let applied = desired.applied {
                        status.appliedGeneration = applied.generation
                        status.appliedHash = applied.contentHash
                        status.appliedHost = applied.host
                        status.appliedTime = applied.time
                        status.guestGeneration = applied.guest?.generation
                        status.guestResult = applied.guest?.result.rawValue
                        status.guestTime = applied.guest?.time
                        status.inSync = runtime.pipeline.isInSync(snapshot, desired)
                    }
                }
            } catch {
                status.managed = snapshot.contextMetadata != nil
                status.problem = "\(error)"
            }
            if !status.managed && status.problem == nil && status.lastRun == nil { continue }
            result.append(status)
        }
        return result
    }
}
