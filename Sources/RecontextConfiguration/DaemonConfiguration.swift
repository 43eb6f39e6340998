import Logging
import RecontextCore

// MARK: - DaemonConfiguration

/// The daemon's configuration, read from `/etc/recontextd/recontextd.yaml` by ``ConfigurationLoader``.
///
/// Every key is optional; a missing key takes the default shown. Unknown keys are errors.
/// Variable names match `[A-Za-z_][A-Za-z0-9_-]*`; `name`, `host`, `vm` and `var` are reserved.
///
/// ```yaml
/// libvirt:
///   uri: qemu:///system            # libvirt connection URI (CLI: --connect overrides). Default qemu:///system
///   reconnect-max-backoff: 30      # seconds (or "30s", "2m") between reconnect attempts, at most. Default 30
/// images:
///   directory: /var/lib/recontextd/images   # absolute path where context images are written. Default shown
///   mode: "0640"                   # octal file mode of images (quote it). Default "0640"
///   group: libvirt-qemu            # group name or numeric gid given to images. Default: none (unchanged)
///   max-size: 16MiB                # largest image; bytes, or with B/KiB/MiB/GiB. Default 16MiB
///   shared: false                  # the directory is shared by several hosts (same path, e.g. NFS): then a host
///                                  # collects only unreferenced images of domains defined on it. Default false
/// host:
///   name: hv1                      # this host's name as guests see it. Default: the machine's hostname
///   variables:                     # free string variables for every guest. Default: none
///     monitoring_endpoint: http://10.0.0.5:9090
///     ntp_server: 10.0.0.1
///     proxy: http://proxy:3128
///     zone: rack-1                 # also the ConfigDrive availability_zone
///     api_token: s3cr3t
///   secret-variables: [api_token]  # which variables are secret: kept out of logs and non-secret files. Default: none
/// context:
///   default-format: nocloud        # nocloud | configdrive | opennebula | files. Default nocloud
///   managed: opt-in                # opt-in (domains with context metadata) | all. Default opt-in
///   instance-id: stable            # stable | per-host, when the metadata names none. Default stable
///   device:
///     mode: media-change           # media-change | scsi-replace (detach + attach a SCSI CD-ROM). Default media-change
///     target: sdz                  # target dev of the context CD-ROM when the metadata names none. Default: none
///   companion-directory: /usr/share/recontextd/guest   # the guest companion's packages, for VMs with
///                                  # companion="yes" (read at start and on reload). Default shown
/// pipeline:
///   concurrency: 4                 # domains processed at once, 1-256. Default 4
///   reconcile-interval: 300        # seconds (or "5m") between periodic reconciles; 0 = off. Default 300
///   collect-grace: 120             # seconds (or "2m") an unreferenced image (or stale temporary) is kept. Default 120
///   shutdown-budget: 40            # seconds running runs may take to finish at stop, then cancelled; < 55. Default 40
///   retry:
///     attempts: 5                  # tries per phase before giving up, 1-100. Default 5
///     initial-backoff: 200         # milliseconds (or "200ms", "1s") before the first retry. Default 200
///     max-backoff: 10000           # milliseconds (or "10s"), cap of the doubling backoff. Default 10000
/// limits:                          # bounds on what a VM's metadata may ask for (MetadataLimits)
///   max-files: 256                 # files per spec. Default 256
///   max-file-size: 1MiB            # one file, after decoding and rendering. Default 1MiB
///   max-total-size: 8MiB           # all files of one image. Default 8MiB
///   max-path-length: 255           # bytes in a file path. Default 255
///   max-path-depth: 8              # components of a file path. Default 8
///   max-depth: 8                   # nesting of the metadata XML. Default 8
///   max-variables: 1024            # variables per spec. Default 1024
///   max-name-length: 128           # characters in a variable name. Default 128
///   max-metadata-size: 16MiB       # the metadata XML. Default 16MiB
/// log:
///   level: info                    # trace | debug | info | notice | warning | error | critical. Default info
///   target: auto                   # auto | journal | stderr (CLI: --log-target). Default auto
/// metrics:
///   textfile: /var/lib/prometheus/node-exporter/recontextd.prom   # node_exporter textfile. Default: none (off)
///   interval: 15                   # seconds (or "15s", "1m") between textfile writes. Default 15
///   listen: unix:/run/recontextd/metrics.sock   # or 127.0.0.1:9466, [::1]:9466. Default: none (off)
/// ```
///
/// `log.target`, `log.level`'s flag, and `metrics.*` are read at start; a reload (SIGHUP) does not
/// change them.
public struct DaemonConfiguration: Sendable, Hashable {
    /// The default location of the configuration file.
    public static let defaultPath = "/etc/recontextd/recontextd.yaml"

    /// `libvirt.*`: how to reach libvirt.
    public struct Libvirt: Sendable, Hashable {
        /// `libvirt.uri`: the connection URI. Default `qemu:///system`.
        public var uri: String = "qemu:///system"
        /// `libvirt.reconnect-max-backoff`: longest wait between reconnect attempts. Default 30 s.
        public var reconnectMaxBackoff: Duration = .seconds(30)
        /// The defaults.
        public init() {}
    }

    /// `images.*`: where and how context images are written.
    public struct Images: Sendable, Hashable {
        /// `images.directory`: absolute directory for the images. Default `/var/lib/recontextd/images`.
        public var directory: String = "/var/lib/recontextd/images"
        /// `images.mode`: file mode of the images. Default `0640`.
        public var mode: UInt16 = 0o640
        /// `images.group`: group (name or numeric gid) given to the images; `nil` leaves it. Default `nil`.
        public var group: String?
        /// `images.max-size`: largest image in bytes. Default 16 MiB.
        public var maxSize: Int = 16 << 20
        /// `images.shared`: several hosts use the directory (the same path, e.g. NFS). Then a
        /// host removes only unreferenced images of domains it knows; with a host-local directory
        /// (the default) it removes every unreferenced image of ours. Default false.
        public var shared: Bool = false
        /// The defaults.
        public init() {}
    }

    /// `context.managed`: which domains recontextd manages (Core's ``RecontextCore/ManagedDomains``).
    public typealias ManagedDomains = RecontextCore.ManagedDomains

    /// `context.device.mode`: how the context CD-ROM is changed (Core's ``RecontextCore/DeviceMode``).
    public typealias DeviceMode = RecontextCore.DeviceMode

    /// `context.device.*`: the context CD-ROM.
    public struct Device: Sendable, Hashable {
        /// `context.device.mode`. Default `media-change`.
        public var mode: DeviceMode = .mediaChange
        /// `context.device.target`: target dev used when the metadata names none. Default `nil`.
        public var target: String?
        /// The defaults.
        public init() {}
    }

    /// `context.*`: what is rendered and for whom.
    public struct Context: Sendable, Hashable {
        /// `context.default-format`. Default `nocloud`.
        public var defaultFormat: ContextFormat = .noCloud
        /// `context.managed`. Default `opt-in`.
        public var managed: ManagedDomains = .optIn
        /// `context.instance-id`. Default `stable`.
        public var instanceID: InstanceIDPolicy = .stable
        /// `context.device.*`.
        public var device = Device()
        /// `context.companion-directory`: where the guest companion's packages are read from for
        /// the VMs whose metadata says `companion="yes"`. Default `/usr/share/recontextd/guest`.
        public var companionDirectory: String = CompanionPackages.defaultDirectory
        /// The defaults.
        public init() {}
    }

    /// `pipeline.retry.*`: retries of a failed phase.
    public struct Retry: Sendable, Hashable {
        /// `pipeline.retry.attempts`: tries per phase. Default 5.
        public var attempts: Int = 5
        /// `pipeline.retry.initial-backoff`: wait before the first retry. Default 200 ms.
        public var initialBackoff: Duration = .milliseconds(200)
        /// `pipeline.retry.max-backoff`: cap of the doubling wait. Default 10 s.
        public var maxBackoff: Duration = .milliseconds(10_000)
        /// The defaults.
        public init() {}
    }

    /// `pipeline.*`: how work is scheduled.
    public struct Pipeline: Sendable, Hashable {
        /// `pipeline.concurrency`: domains processed at once. Default 4.
        public var concurrency: Int = 4
        /// `pipeline.reconcile-interval`: time between periodic reconciles; `nil` (0 in the file) is off.
        /// Default 300 s.
        public var reconcileInterval: Duration? = .seconds(300)
        /// `pipeline.collect-grace`: how old an unreferenced image (or a temporary file left by a
        /// killed write) must be before image collection removes it. Collection runs after each
        /// periodic reconcile (or every 300 s when reconciles are off). Default 120 s; it must
        /// exceed the longest image write.
        public var collectGrace: Duration = .seconds(120)
        /// `pipeline.shutdown-budget`: how long running runs may take to finish at stop before they
        /// are cancelled (at their next phase). Below the unit's `TimeoutStopSec=60s`. Default 40 s.
        public var shutdownBudget: Duration = .seconds(40)
        /// `pipeline.retry.*`.
        public var retry = Retry()
        /// The defaults.
        public init() {}
    }

    /// `log.target`: where log entries go.
    public enum LogTarget: String, Sendable, Hashable, CaseIterable {
        /// The journal when standard error is the journal stream systemd set up (`JOURNAL_STREAM`),
        /// else standard error.
        case auto
        /// Native journal entries with fields (through libsystemd), whoever started us.
        case journal
        /// Standard error: sd-daemon priority prefixes under systemd, readable lines elsewhere.
        case stderr
    }

    /// `metrics.*`: Prometheus metrics.
    public struct Metrics: Sendable, Hashable {
        /// `metrics.textfile`: the file written atomically for node_exporter's textfile collector
        /// (it must end in `.prom`); `nil` is off. Default `nil`.
        public var textfile: String?
        /// `metrics.interval`: time between textfile writes (it is also written, debounced, after
        /// each run). Default 15 s.
        public var interval: Duration = .seconds(15)
        /// `metrics.listen`: where `GET /metrics` is answered; `nil` is off. Default `nil`.
        public var listen: MetricsListenAddress?
        /// The defaults.
        public init() {}
    }

    /// `libvirt.*`.
    public var libvirt = Libvirt()
    /// `images.*`.
    public var images = Images()
    /// `host.*`: `host.name` (default: the machine's hostname), `host.variables`, `host.secret-variables`.
    public var host: HostFacts
    /// `context.*`.
    public var context = Context()
    /// `pipeline.*`.
    public var pipeline = Pipeline()
    /// `limits.*`.
    public var limits = MetadataLimits()
    /// `log.level`. Default `info`.
    public var logLevel: Logger.Level = .info
    /// `log.target`. Default `auto`.
    public var logTarget: LogTarget = .auto
    /// `metrics.*`.
    public var metrics = Metrics()

    /// The defaults, with the given host name.
    /// - Parameter hostName: This host's name.
    public init(hostName: String) {
        self.host = HostFacts(name: hostName)
    }
}
