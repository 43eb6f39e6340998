import Foundation
import XML

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

    private struct State {
        var process: Process?
        var stdinWriter: FileHandle?
        var stdoutReader: LineReader?
        var libvirtdPID: Int32
        /// Every libvirtd this host ran, the current one last (see ``crashes()``).
        var libvirtdPIDs: [Int32]
    }

    private let lock = NSLock()
    private var state: State
    private let removeStateDirectoryOnStop: Bool
    /// When the harness was started (cores older than this are not this host's).
    let startedAt: Date
    /// Every libvirtd PID this host had, in the test's PID namespace.
    var libvirtdPIDHistory: [Int32] { lock.withLock { state.libvirtdPIDs } }

    private init(
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

    // MARK: - Configuration

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

    // MARK: - Starting and stopping

    /// Starts a host and returns when its libvirtd answers (about 0.2 s with a warm capabilities
    /// cache, 1.5 s without; two at once on 2 cores: about 2.5 s).
    ///
    /// - Parameter configuration: hostname, address, directories; see ``Configuration``.
    /// - Throws: ``LibvirtTestHostError/unavailable(_:)`` where ``skipReason`` is set,
    ///   ``LibvirtTestHostError/startFailed(_:logTail:)`` when the daemons do not come up.
    public static func start(
        _ configuration: Configuration = Configuration()
    ) async throws -> LibvirtTestHost {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try startBlocking(configuration) })
            }
        }
    }

    /// Blocking form of ``start(_:)``.
    public static func startBlocking(
        _ configuration: Configuration = Configuration()
    ) throws -> LibvirtTestHost {
        if let reason = skipReason {
            throw LibvirtTestHostError.unavailable(reason)
        }
        let fileManager = FileManager.default
        let stateDirectory: URL
        let removeOnStop: Bool
        if let given = configuration.stateDirectory {
            stateDirectory = given
            removeOnStop = false
        } else {
            let token = UUID().uuidString.prefix(8).lowercased()
            stateDirectory = URL(fileURLWithPath: NSTemporaryDirectory())
                .appendingPathComponent("lvhost-\(token)")
            removeOnStop = true
        }
        try fileManager.createDirectory(at: stateDirectory, withIntermediateDirectories: true)

        var arguments = [
            harnessScriptPath(),
            "--state-dir", stateDirectory.path,
            "--hostname", configuration.hostname,
            "--address", configuration.address,
            "--migration-ports",
            "\(configuration.migrationPorts.lowerBound)-\(configuration.migrationPorts.upperBound)",
            "--log-level", String(configuration.logLevel),
            "--timeout", String(configuration.startupTimeout),
        ]
        for directory in configuration.sharedDirectories { arguments += ["--shared-dir", directory] }
        for directory in configuration.privateDirectories { arguments += ["--private-dir", directory] }
        for (name, address) in configuration.extraHosts.sorted(by: { $0.key < $1.key }) {
            arguments += ["--hosts-entry", "\(address)=\(name)"]
        }
        if let cache = configuration.qemuCapabilitiesCache { arguments += ["--qemu-caps-cache", cache] }
        if !configuration.usePIDNamespace { arguments.append("--no-pid-namespace") }
        // A directory we made goes with the harness, even if this process dies without stop().
        if removeOnStop { arguments.append("--remove-state-dir-on-exit") }

        CoreDumps.enable()
        let startedAt = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        let stdinPipe = Pipe()
        let stdoutPipe = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = FileHandle.standardError
        try process.run()

        let reader = LineReader(stdoutPipe.fileHandleForReading)
        let failure: LibvirtTestHostError
        if let line = reader.readLine() {
            do {
                let ready = try JSONDecoder.snakeCase.decode(ReadyLine.self, from: Data(line.utf8))
                if ready.ready, ready.uri != nil {
                    return LibvirtTestHost(
                        ready: ready, process: process, stdinWriter: stdinPipe.fileHandleForWriting,
                        stdoutReader: reader, stateDirectory: stateDirectory,
                        removeStateDirectoryOnStop: removeOnStop, startedAt: startedAt)
                }
                let kept = removeOnStop ? "" : " (state directory: \(stateDirectory.path))"
                failure = .startFailed("\(ready.error ?? "not ready")\(kept)", logTail: ready.logTail ?? "")
            } catch {
                failure = .protocolError("unreadable ready line \(line.debugDescription): \(error)")
            }
        } else {
            failure = .startFailed("the harness exited without a ready line", logTail: "")
        }
        try? stdinPipe.fileHandleForWriting.close()
        process.waitUntilExit()
        if removeOnStop { // the harness removes it too, but not when its arguments were refused
            try? fileManager.removeItem(at: stateDirectory)
        }
        throw failure
    }

    /// Stops the host: closes the supervisor's stdin and waits for it to stop every process.
    ///
    /// Idempotent. Removes the state directory if this object created it.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.stopBlocking()
                continuation.resume()
            }
        }
    }

    /// Blocking form of ``stop()``.
    ///
    /// - Parameter timeout: seconds to wait for a clean exit before SIGTERM, then SIGKILL, to the
    ///   supervisor (a killed supervisor still takes its PID namespace down with it).
    public func stopBlocking(timeout: TimeInterval = 30) {
        lock.lock()
        defer { lock.unlock() }
        guard let process = state.process else { return }
        try? state.stdinWriter?.close()
        state.stdinWriter = nil
        if !Self.waitForExit(process, seconds: timeout) {
            process.terminate()
            if !Self.waitForExit(process, seconds: 5) {
                kill(process.processIdentifier, SIGKILL)
                _ = Self.waitForExit(process, seconds: 5)
            }
        }
        state.stdoutReader?.close()
        state.stdoutReader = nil
        state.process = nil
        if removeStateDirectoryOnStop {
            try? FileManager.default.removeItem(at: stateDirectory) // normally gone already
        }
    }

    private static func waitForExit(_ process: Process, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline { return false }
            usleep(5_000)
        }
        return true
    }

    // MARK: - Talking to the host

    /// Runs `/usr/bin/virsh -c <uri> <arguments>` and returns its standard output.
    ///
    /// - Throws: ``LibvirtTestHostError/commandFailed(command:status:standardError:)`` with virsh's
    ///   standard error when it exits non-zero.
    public func virsh(_ arguments: [String]) throws -> String {
        try Self.run("/usr/bin/virsh", ["-c", uri] + arguments)
    }

    /// Defines a persistent domain from `xml` (`virsh define`), through a file in the state
    /// directory.
    public func defineDomain(_ xml: String) throws {
        let file = stateDirectory.appendingPathComponent("define-\(UUID().uuidString).xml")
        try Data(xml.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        _ = try virsh(["define", file.path])
    }

    /// Arguments that run `command` "on" this host: in its mount, UTS (and PID) namespaces, where
    /// plain `qemu:///system`, `/etc/libvirt`, `/run/libvirt` … are this host's.
    ///
    /// Start the result with `Process` (executable `/usr/bin/nsenter`, these arguments minus the
    /// first) or pass it to ``runOnHost(_:)``.
    ///
    /// - Important: A `Process` started from a libdispatch thread (any async test) inherits that
    ///   thread's signal mask, which blocks SIGTERM, SIGCHLD and most others. A long-running
    ///   program started this way that must react to SIGTERM or reap children has to unblock them
    ///   itself (the harness does).
    public func onHostArguments(_ command: [String]) -> [String] {
        var arguments = ["/usr/bin/nsenter", "--target", String(libvirtdPID), "--mount", "--uts"]
        if usesPIDNamespace { arguments.append("--pid") }
        return arguments + ["--"] + command
    }

    /// Runs `command` on this host (see ``onHostArguments(_:)``) and returns its standard output.
    public func runOnHost(_ command: [String]) throws -> String {
        let arguments = onHostArguments(command)
        return try Self.run(arguments[0], Array(arguments.dropFirst()))
    }

    /// Sends SIGHUP to libvirtd (it re-reads `/etc/libvirt/hooks/`, i.e. `STATE/etc/hooks/`).
    public func reloadLibvirtd() throws {
        _ = try command("reload")
    }

    /// Stops libvirtd and starts it again (running VMs stay up and are reconnected).
    ///
    /// Clients see their connection drop; for reconnect tests.
    public func restartLibvirtd() throws {
        let reply = try command("restart-libvirtd")
        if let pid = reply.libvirtdPid {
            lock.withLock {
                state.libvirtdPID = pid
                state.libvirtdPIDs.append(pid)
            }
        }
    }

    private func command(_ line: String) throws -> Reply {
        lock.lock()
        defer { lock.unlock() }
        guard let writer = state.stdinWriter, let reader = state.stdoutReader else {
            throw LibvirtTestHostError.stopped
        }
        try writer.write(contentsOf: Data((line + "\n").utf8))
        guard let response = reader.readLine() else {
            throw LibvirtTestHostError.protocolError("the harness exited during \(line.debugDescription)")
        }
        let reply = try JSONDecoder.snakeCase.decode(Reply.self, from: Data(response.utf8))
        guard reply.ok else {
            throw LibvirtTestHostError.commandFailed(
                command: [line], status: 1,
                standardError: [reply.error, reply.logTail].compactMap { $0 }.joined(separator: "\n"))
        }
        return reply
    }

    /// Runs a program to completion; its output goes through temporary files, so neither stream
    /// can fill a pipe and stall it.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let fileManager = FileManager.default
        let base = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("lvhost-run-\(UUID().uuidString)")
        let outURL = base.appendingPathExtension("out")
        let errURL = base.appendingPathExtension("err")
        _ = fileManager.createFile(atPath: outURL.path, contents: nil)
        _ = fileManager.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? fileManager.removeItem(at: outURL)
            try? fileManager.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        do {
            try process.run()
        } catch {
            try? outHandle.close()
            try? errHandle.close()
            throw error
        }
        process.waitUntilExit()
        try? outHandle.close()
        try? errHandle.close()
        let output = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let errors = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
            throw LibvirtTestHostError.commandFailed(
                command: [executable] + arguments, status: process.terminationStatus, standardError: errors)
        }
        return output
    }

    // MARK: - Minimal domains

    /// One CD-ROM drive of a ``LibvirtTestHost/minimalDomainXML(name:uuid:cdroms:type:memoryMiB:)``.
    public struct CDROM: Sendable, Hashable {
        /// The bus: SATA and IDE drives cannot be hot-plugged; SCSI (virtio-scsi) ones can.
        public enum Bus: String, Sendable, CaseIterable {
            case sata, ide, scsi
        }

        /// The bus of the drive.
        public var bus: Bus
        /// Target device name: `sda` (SATA, SCSI), `hdc` (IDE).
        public var target: String
        /// Image path, or `nil` for an empty drive.
        public var source: String?
        /// `startupPolicy` of the source (`"optional"` lets a VM start or arrive without the file).
        public var startupPolicy: String?

        /// A drive on `bus` at `target` holding `source`.
        public init(bus: Bus, target: String, source: String?, startupPolicy: String? = nil) {
            self.bus = bus
            self.target = target
            self.source = source
            self.startupPolicy = startupPolicy
        }
    }

    /// XML of the smallest useful VM: 128 MiB, 1 vCPU, no OS disk (it sits in SeaBIOS), no USB,
    /// no balloon, and the given read-only CD-ROM drives.
    ///
    /// The machine is `pc` (i440FX) when any drive is on IDE, which q35 lacks, else `q35`; a
    /// virtio-scsi controller is added when any drive is on SCSI.
    ///
    /// - Parameters:
    ///   - name: domain name.
    ///   - uuid: domain UUID, or `nil` to let libvirt choose.
    ///   - cdroms: the drives, e.g. `[.init(bus: .sata, target: "sda", source: "/srv/ctx-1.iso")]`.
    ///   - type: `"kvm"`, or `"qemu"` (TCG) where there is no usable `/dev/kvm`.
    ///   - memoryMiB: guest memory.
    public static func minimalDomainXML(
        name: String, uuid: UUID? = nil, cdroms: [CDROM], type: String = "kvm", memoryMiB: Int = 128
    ) -> String {
        let machine = cdroms.contains { $0.bus == .ide } ? "pc" : "q35"
        var xml = "<domain type='\(escape(type))'>\n"
        xml += "  <name>\(escape(name))</name>\n"
        if let uuid { xml += "  <uuid>\(uuid.uuidString.lowercased())</uuid>\n" }
        xml += "  <memory unit='MiB'>\(memoryMiB)</memory>\n"
        xml += "  <vcpu>1</vcpu>\n"
        xml += "  <os>\n    <type arch='x86_64' machine='\(machine)'>hvm</type>\n  </os>\n"
        xml += "  <devices>\n"
        if cdroms.contains(where: { $0.bus == .scsi }) {
            xml += "    <controller type='scsi' model='virtio-scsi'/>\n"
        }
        for cdrom in cdroms {
            xml += "    <disk type='file' device='cdrom'>\n"
            xml += "      <driver name='qemu' type='raw'/>\n"
            if let source = cdrom.source {
                let policy = cdrom.startupPolicy.map { " startupPolicy='\(escape($0))'" } ?? ""
                xml += "      <source file='\(escape(source))'\(policy)/>\n"
            }
            xml += "      <target dev='\(escape(cdrom.target))' bus='\(cdrom.bus.rawValue)'/>\n"
            xml += "      <readonly/>\n"
            xml += "    </disk>\n"
        }
        xml += "    <controller type='usb' model='none'/>\n"
        xml += "    <memballoon model='none'/>\n"
        xml += "  </devices>\n"
        xml += "</domain>\n"
        return xml
    }

    private static func escape(_ text: String) -> String {
        XMLEscaping.attribute(text)
    }
}

// MARK: - Errors

/// Why a ``LibvirtTestHost`` could not start, or a command on it failed.
public enum LibvirtTestHostError: Error, CustomStringConvertible, Sendable {
    /// The machine lacks something (see ``LibvirtTestHost/skipReason``).
    case unavailable(String)
    /// The harness reported `{"ready": false}`; `logTail` holds the end of the daemons' logs.
    case startFailed(String, logTail: String)
    /// The harness said something this type does not understand, or went away mid-command.
    case protocolError(String)
    /// A program (or harness command) exited non-zero.
    case commandFailed(command: [String], status: Int32, standardError: String)
    /// The host was already stopped.
    case stopped

    public var description: String {
        switch self {
        case .unavailable(let reason):
            return reason
        case .startFailed(let message, let logTail):
            return "libvirt test host did not start: \(message)" + (logTail.isEmpty ? "" : "\n\(logTail)")
        case .protocolError(let message):
            return "libvirt test host harness: \(message)"
        case .commandFailed(let command, let status, let standardError):
            return "\(command.joined(separator: " ")) failed (status \(status)): \(standardError)"
        case .stopped:
            return "libvirt test host already stopped"
        }
    }
}

// MARK: - Harness protocol

/// The harness's ready line: `{"ready": true, "uri": …}` or `{"ready": false, "error": …}`.
private struct ReadyLine: Decodable {
    var ready: Bool
    var error: String?
    var logTail: String?
    var uri: String?
    var pid: Int32?
    var libvirtdPid: Int32?
    var virtlogdPid: Int32?
    var hostname: String?
    var address: String?
    var hostUuid: String?
    var migrationPorts: [Int]?
    var pidNamespace: Bool?
    var startupSeconds: Double?
}

/// The answer to one harness command: `{"ok": true, …}`.
private struct Reply: Decodable {
    var ok: Bool
    var error: String?
    var logTail: String?
    var libvirtdPid: Int32?
}

extension JSONDecoder {
    fileprivate static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// Reads `\n`-terminated lines from a pipe, blocking. Used only under `LibvirtTestHost.lock` (or
/// before the host object exists).
private final class LineReader {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    /// The next line without its newline, or `nil` at end of file.
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer.removeSubrange(buffer.startIndex...newline)
                return String(decoding: line, as: UTF8.self)
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    func close() {
        try? handle.close()
    }
}
