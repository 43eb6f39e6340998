import Foundation

// MARK: - LibvirtTestHost

/// A private, real libvirt host for tests: its own `libvirtd`, `virtlogd` and QEMU processes.
///
/// Starts `Tests/Harness/libvirt_host.py` (see its docstring and `Tests/Harness/README.md`), which
/// runs the daemons in their own PID, mount and UTS namespaces with private copies of
/// `/etc/libvirt`, `/run/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`, `/var/log/libvirt` and
/// `/etc/hosts`. Several hosts can run at once (give each its own hostname, address and migration
/// ports, e.g. ``Configuration/numbered(_:)``), so live migration between them is real.
///
/// The supervisor's standard input is a pipe held open by this object. When the test process exits
/// or crashes, the pipe closes and the supervisor stops every QEMU, `libvirtd` and `virtlogd` it
/// started; if the supervisor itself is killed, the kernel kills everything in its PID namespace.
///
/// ```swift
/// @Test(.realPart(missing: LibvirtTestHost.skipReason))
/// func mediaChange() async throws {
///     let host = try await LibvirtTestHost.start()
///     defer { host.stopBlocking() }
///     let iso = "/tmp/ctx-1.iso"  // e.g. made with genisoimage
///     try host.defineDomain(LibvirtTestHost.minimalDomainXML(
///         name: "vm1", cdroms: [.init(bus: .sata, target: "sda", source: iso)]))
///     _ = try host.virsh(["start", "vm1"])
/// }
/// ```
///
/// - Important: Every method that talks to the supervisor or runs a program blocks the calling
///   thread (a few ms for `virsh`, seconds for a migration). The `async` entry points, ``start(_:)``
///   and ``stop()``, move their blocking work off the cooperative thread pool.
public final class LibvirtTestHost: @unchecked Sendable {
    // @unchecked Sendable: the stored `let`s are immutable Sendable values. The only mutable state
    // (the Process, its pipes, the current libvirtd PID; `process == nil` once stopped) lives in
    // `state`, read and written only while holding `lock` (or in deinit, when nothing else can
    // reach it). Commands to the supervisor hold the lock for their whole request/response
    // exchange, so they are serialised.

    // MARK: Public properties

    /// Client URI from any namespace, e.g. `qemu:///system?socket=/tmp/…/run/libvirt-sock`.
    public let uri: String
    /// The URI another host's `libvirtd` must use to reach this one, e.g. for `migrate --p2p`.
    ///
    /// Same socket as ``uri`` with the `+unix` transport: a plain `qemu:///system?socket=…` opened
    /// inside a libvirtd is served by that libvirtd's own QEMU driver, which ignores `socket=`, so
    /// a peer-to-peer migration to it fails with "Attempt to migrate guest to the same host".
    public let peerURI: String
    /// The harness's state directory (configuration, logs, sockets, `STATE/log/qemu/DOMAIN.log`).
    public let stateDirectory: URL
    /// The hostname inside the host's UTS namespace.
    public let hostname: String
    /// The host's migration address (`migration_address` and `migration_host` in qemu.conf).
    public let address: String
    /// The `host_uuid` in this host's libvirtd.conf (distinct per state directory).
    public let hostUUID: String
    /// The `migration_port_min ... migration_port_max` range of this host.
    public let migrationPorts: ClosedRange<Int>
    /// PID of the process started by this object (the supervisor), in the test's PID namespace.
    public let supervisorPID: Int32
    /// PID of the host's `virtlogd`, in the test's PID namespace.
    public let virtlogdPID: Int32
    /// Whether the host has its own PID namespace (then ``onHostArguments(_:)`` adds `--pid`).
    public let usesPIDNamespace: Bool
    /// Seconds the supervisor took from entering its namespaces to `libvirtd` answering.
    public let startupSeconds: Double

    /// PID of the host's current `libvirtd`, in the test's PID namespace; changes on
    /// ``restartLibvirtd()``.
    public var libvirtdPID: Int32 {
        lock.withLock { state.libvirtdPID }
    }

    // MARK: Private state

    struct State {
        var process: Process?
        var stdinWriter: FileHandle?
        var stdoutReader: LineReader?
        var libvirtdPID: Int32
        /// Every libvirtd this host ran, the current one last (see ``crashes()``).
        var libvirtdPIDs: [Int32]
    }

    let lock = NSLock()
    var state: State
    let removeStateDirectoryOnStop: Bool
    /// When the harness was started (cores older than this are not this host's).
    let startedAt: Date
    /// Every libvirtd PID this host had, in the test's PID namespace.
    var libvirtdPIDHistory: [Int32] { lock.withLock { state.libvirtdPIDs } }

    init(
        ready: ReadyLine, process: Process, stdinWriter: FileHandle, stdoutReader: LineReader,
        stateDirectory: URL, removeStateDirectoryOnStop: Bool, startedAt: Date
    ) {
        self.uri = ready.uri ?? ""
        self.peerURI = self.uri.replacingOccurrences(of: "qemu:///", with: "qemu+unix:///")
        self.stateDirectory = stateDirectory
        self.hostname = ready.hostname ?? ""
        self.address = ready.address ?? ""
        self.hostUUID = ready.hostUuid ?? ""
        let ports = ready.migrationPorts ?? [0, 0]
        self.migrationPorts = ports[0]...ports[max(0, ports.count - 1)]
        self.supervisorPID = process.processIdentifier
        self.virtlogdPID = ready.virtlogdPid ?? 0
        self.usesPIDNamespace = ready.pidNamespace ?? false
        self.startupSeconds = ready.startupSeconds ?? 0
        self.removeStateDirectoryOnStop = removeStateDirectoryOnStop
        self.state = State(
            process: process, stdinWriter: stdinWriter, stdoutReader: stdoutReader,
            libvirtdPID: ready.libvirtdPid ?? 0, libvirtdPIDs: [ready.libvirtdPid ?? 0])
        self.startedAt = startedAt
    }

    deinit {
        // Closing our end of the pipe is enough: the supervisor sees EOF and cleans up by itself.
        try? state.stdinWriter?.close()
    }

    // MARK: - Availability

    /// Programs the harness needs, with the Debian package that ships each.
    private static let requiredPrograms: [(path: String, package: String)] = [
        ("/usr/sbin/libvirtd", "libvirt-daemon"),
        ("/usr/sbin/virtlogd", "libvirt-daemon"),
        ("/usr/bin/virsh", "libvirt-clients"),
        ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
        ("/usr/bin/python3", "python3"),
        ("/usr/bin/nsenter", "util-linux"),
    ]

    /// Why real-libvirt tests cannot run on this machine, or `nil` when they can.
    ///
    /// Checks: running as root, the programs above, and the harness script.
    public static var skipReason: String? {
        if geteuid() != 0 {
            return "LibvirtTestHost: needs root (it runs its own libvirtd in new namespaces)"
        }
        for program in requiredPrograms where !FileManager.default.isExecutableFile(atPath: program.path) {
            return "LibvirtTestHost: \(program.path) missing (apt-get install \(program.package))"
        }
        let script = harnessScriptPath()
        if !FileManager.default.fileExists(atPath: script) {
            return "LibvirtTestHost: harness script not found at \(script)"
        }
        return nil
    }

    /// Whether real-libvirt tests can run here; see ``skipReason``.
    public static var isAvailable: Bool { skipReason == nil }

    /// Whether `/dev/kvm` is usable, so that `<domain type='kvm'>` works.
    ///
    /// On a nested-virtualisation machine, firmware-only VMs run under KVM while a Linux kernel may
    /// hang early; use `type: "qemu"` (TCG) for a Linux guest.
    public static var hasKVM: Bool {
        FileManager.default.isWritableFile(atPath: "/dev/kvm")
    }

    /// `"kvm"` where ``hasKVM``, else `"qemu"`: a domain type that works for a firmware-only VM.
    public static var preferredDomainType: String { hasKVM ? "kvm" : "qemu" }

    /// Path of `Tests/Harness/libvirt_host.py`, found from this source file's location.
    ///
    /// The environment variable `LIBVIRT_TEST_HARNESS`, when set, overrides it.
    public static func harnessScriptPath() -> String {
        if let path = ProcessInfo.processInfo.environment["LIBVIRT_TEST_HARNESS"], !path.isEmpty {
            return path
        }
        // Tests/TestSupport/LibvirtTestHost.swift -> Tests/Harness/libvirt_host.py
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Harness")
            .appendingPathComponent("libvirt_host.py")
            .path
    }
}
