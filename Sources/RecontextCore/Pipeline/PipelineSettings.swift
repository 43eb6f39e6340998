/// What a pipeline run needs to know besides the domain: this host's facts and the policies.
public struct PipelineSettings: Sendable, Hashable {
    /// This host's name and variables.
    public var host: HostFacts
    /// The format used when the domain's metadata names none.
    public var defaultFormat: ContextFormat
    /// The instance-id policy used when the domain's metadata names none.
    public var defaultInstanceID: InstanceIDPolicy
    /// Which domains are managed.
    public var managedPolicy: ManagedDomains
    /// How the drive is changed.
    public var deviceMode: DeviceMode
    /// The target of the context CD-ROM when the domain's metadata names none.
    public var defaultTarget: String?
    /// Retries of hypervisor operations.
    public var retry: RetryPolicy
    /// Limits on per-VM data.
    public var limits: MetadataLimits
    /// The guest companion's packages for VMs that opt in (`companion="yes"`). Default
    /// ``CompanionPackages/notRead``: an opted-in VM's run fails saying so.
    public var companion: CompanionPackages = .notRead

    /// Creates settings.
    public init(
        host: HostFacts, defaultFormat: ContextFormat = .noCloud, defaultInstanceID: InstanceIDPolicy = .stable,
        managedPolicy: ManagedDomains = .optIn,
        deviceMode: DeviceMode = .mediaChange, defaultTarget: String? = nil,
        retry: RetryPolicy = RetryPolicy(), limits: MetadataLimits = .default
    ) {
        self.host = host
        self.defaultFormat = defaultFormat
        self.defaultInstanceID = defaultInstanceID
        self.managedPolicy = managedPolicy
        self.deviceMode = deviceMode
        self.defaultTarget = defaultTarget
        self.retry = retry
        self.limits = limits
    }
}
