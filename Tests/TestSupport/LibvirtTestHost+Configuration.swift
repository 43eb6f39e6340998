import Foundation

// MARK: - Configuration

extension LibvirtTestHost {
    /// How to start a host. The defaults give one host at 127.0.10.1.
    public struct Configuration: Sendable {
        /// Hostname inside the host. Not `localhost`.
        public var hostname: String = "test-host-1"
        /// Migration address: anything in 127.0.0.0/8 except 127.0.0.1 (libvirtd refuses that).
        public var address: String = "127.0.10.1"
        /// Migration ports; disjoint between hosts that run at once.
        public var migrationPorts: ClosedRange<Int> = 49152...49215
        /// Directories created and left visible at the same path to every host (e.g. images).
        public var sharedDirectories: [String] = []
        /// Paths that get a per-host private directory inside the host (host-local images).
        public var privateDirectories: [String] = []
        /// Extra `/etc/hosts` lines inside the host, hostname to address (e.g. the peer host).
        public var extraHosts: [String: String] = [:]
        /// State directory; `nil` makes a new one under the temporary directory, which the harness
        /// deletes when it exits (after ``LibvirtTestHost/stop()``, a dropped host or a crashed
        /// test alike). A given directory is kept (and may be reused: domain definitions and the
        /// host UUID survive). Keep it short: socket paths end up under it.
        public var stateDirectory: URL?
        /// Shared cache of libvirt's QEMU capabilities, so that only the first host of a run
        /// probes QEMU (about 1 s); `nil` disables it. libvirt itself re-probes stale entries.
        public var qemuCapabilitiesCache: String? = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("recontextd-test-qemu-caps").path
        /// Run the host in its own PID namespace (default): nothing survives the supervisor.
        public var usePIDNamespace: Bool = true
        /// libvirtd / virtlogd log level for `STATE/log/*.log`: 1 debug … 4 errors.
        public var logLevel: Int = 3
        /// Seconds the supervisor waits for libvirtd to answer before giving up.
        public var startupTimeout: Double = 60

        /// A configuration with the defaults above.
        public init() {}

        /// Host number `n` (1...200) of a set that runs at once: hostname `test-host-n`, address
        /// `127.0.10.n`, 64 migration ports of its own from 49152.
        public static func numbered(_ n: Int) -> Configuration {
            precondition((1...200).contains(n), "host number out of range")
            var configuration = Configuration()
            configuration.hostname = "test-host-\(n)"
            configuration.address = "127.0.10.\(n)"
            let low = 49152 + (n - 1) * 64
            configuration.migrationPorts = low...(low + 63)
            return configuration
        }
    }
}
