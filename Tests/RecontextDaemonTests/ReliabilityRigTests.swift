import Foundation
import RecontextCore
import TestSupport
import Testing
import Virt

// MARK: - ReliabilityRig

/// One private libvirt host (numbers 41-49), a directory for images, state and configuration, a
/// set of opted-in firmware-only VMs, and helpers to check the invariants of issue 6: every VM
/// holds one of our images, every image reads back completely with pycdlib, temporaries never
/// look final, nothing unreferenced is left after a collection.
///
/// Used by `ReliabilityTests` and `SecurityTests`. Everything it starts is stopped by
/// ``tearDown()`` (call it in a `defer`); the host also stops if the test process dies.
final class ReliabilityRig: @unchecked Sendable {
    // @unchecked Sendable: immutable after init except `names`, which only the owning test touches.
    let host: LibvirtTestHost
    let directory: String
    let images: String
    let state: String
    let config: String
    var names: [String] = []
    /// Every daemon started through ``startDaemon(logLevel:unblockedSignals:environment:)``, checked for a crash in ``tearDown()``.
    var daemons: [RecontextdProcess] = []

    /// The context every rig VM gets: a template using a host variable and a VM variable.
    static func metadata(role: String, extraVars: String = "", extraFiles: String = "") -> String {
        """
        <context format="nocloud"><var name="role">\(role)</var>\(extraVars)\
        <file path="etc/monitoring.conf" template="yes">endpoint={{host.monitoring_endpoint}} role={{vm.role}}</file>\
        \(extraFiles)</context>
        """
    }

    /// Starts host `number` with `directory` (made here unless given) shared with it.
    init(number: Int, label: String, directory given: String? = nil) async throws {
        let directory = try given ?? TestDirectories.makeImageDirectory(label)
        var configuration = LibvirtTestHost.Configuration.numbered(number)
        configuration.sharedDirectories = [TestDirectories.sharedImages] + (given.map { [$0] } ?? [])
        host = try await LibvirtTestHost.start(configuration)
        self.directory = directory
        images = directory + "/images"
        state = directory + "/state"
        config = directory + "/recontextd.yaml"
    }

    /// Writes the daemon configuration.
    /// - Parameters:
    ///   - endpoint: `host.variables.monitoring_endpoint`.
    ///   - pipeline: extra lines under `pipeline:` (indented by two spaces).
    ///   - top: extra top-level YAML (e.g. `limits:` or `metrics:` sections).
    ///   - imagesExtra: extra lines under `images:`.
    func writeConfig(
        endpoint: String, pipeline: [String] = [], top: String = "", imagesExtra: [String] = ["mode: \"0644\""],
        hostExtra: [String] = []
    ) throws {
        var yaml = """
            libvirt:
              uri: "\(host.uri)"
              reconnect-max-backoff: 2
            images:
              directory: \(images)

            """
        for line in imagesExtra { yaml += "  \(line)\n" }
        yaml += """
            host:
              name: \(host.hostname)
              variables:
                monitoring_endpoint: \(endpoint)

            """
        for line in hostExtra { yaml += "  \(line)\n" }
        yaml += """
            context:
              default-format: nocloud
            pipeline:
              retry:
                attempts: 3
                initial-backoff: 50ms

            """
        let pipelineLines = pipeline.isEmpty ? ["reconcile-interval: 0"] : pipeline
        for line in pipelineLines { yaml += "  \(line)\n" }
        yaml += top
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
    }

    var globalArguments: [String] { ["--config", config, "--state-dir", state] }

    /// Starts `recontextd run` with this rig's configuration.
    func startDaemon(
        logLevel: String = "info", unblockedSignals: Bool = false, environment: [String: String] = [:]
    ) throws -> RecontextdProcess {
        let daemon = try RecontextdProcess(
            ["run"] + globalArguments + ["--log-level", logLevel, "--log-target", "stderr"],
            environment: environment, unblockedSignals: unblockedSignals)
        daemons.append(daemon)
        return daemon
    }

    // MARK: VMs

    /// Defines and starts `count` SATA VMs named `prefix-N-<token>` carrying `metadata(N)`.
    @discardableResult
    func addVMs(_ prefix: String, count: Int, metadata: (Int) -> String?) throws -> [String] {
        let token = UUID().uuidString.prefix(4).lowercased()
        var made: [String] = []
        for index in 0..<count {
            let name = "\(prefix)-\(index)-\(token)"
            try host.defineDomain(
                LibvirtTestHost.minimalDomainXML(
                    name: name, cdroms: [.init(bus: .sata, target: "sda", source: nil)],
                    type: LibvirtTestHost.preferredDomainType))
            names.append(name)
            made.append(name)
            if let xml = metadata(index) { try setMetadata(name, xml, live: false) }
            _ = try host.virsh(["start", name])
        }
        return made
    }

    /// Sets a VM's context metadata, live and config, through libvirt's API (a METADATA_CHANGE event).
    func setMetadata(_ name: String, _ xml: String, connection: Connection? = nil, live: Bool = true) throws {
        let connection = try connection ?? Connection.open(host.uri)
        try connection.domain(named: name).setMetadata(
            xml, key: "recontext", namespace: ContextMetadata.namespaceURI, impact: live ? [.live, .config] : [.config])
    }

    // MARK: Status

    /// `recontextd status --json`, by domain name.
    func status() throws -> [String: [String: Any]] {
        let result = try RecontextdProcess.runCommand(
            ["status", "--json"] + globalArguments + ["--log-level", "error"])
        guard result.status == 0,
            let rows = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]]
        else {
            throw ProcessRunner.Failure(
                command: "recontextd status --json", status: result.status, standardError: result.standardError,
                standardOutput: result.standardOutput)
        }
        var byName: [String: [String: Any]] = [:]
        for row in rows { if let name = row["name"] as? String { byName[name] = row } }
        return byName
    }

    /// Waits until `status` says every one of `names` is in sync; returns the ones that are not.
    func waitInSync(_ names: [String]? = nil, timeout: Duration = .seconds(60)) async -> [String] {
        let names = names ?? self.names
        var lagging = names
        await eventually(timeout: timeout, every: .milliseconds(100)) {
            guard let rows = try? status() else { return false }
            lagging = names.filter { rows[$0]?["in_sync"] as? Bool != true }
            return lagging.isEmpty
        }
        return lagging
    }

    // MARK: Invariants

    /// What is in the image directory and attached, checked with pycdlib (one python process).
    struct Inspection {
        /// Final-looking `.iso` names in the directory.
        var finalImages: Set<String> = []
        /// Hidden temporary files (`.NAME.tmp-PID-HEX`).
        var temporaries: [String] = []
        /// Anything else in the directory.
        var others: [String] = []
        /// Final images or attached sources pycdlib could not read completely, with the error.
        var unreadable: [String: String] = [:]
        /// VM name to its live and persistent CD-ROM source.
        var live: [String: String?] = [:]
        var persistent: [String: String?] = [:]
        /// Image path to the text of `etc/monitoring.conf`.
        var monitoring: [String: String] = [:]

        /// Final images no domain's live or persistent definition names.
        var orphans: Set<String> {
            let referenced = Set(live.values.compactMap { $0 } + persistent.values.compactMap { $0 })
            return finalImages.filter { !referenced.contains($0) }
        }
        /// VMs whose drive does not hold an existing image of ours.
        var withoutImage: [String] {
            live.filter { _, source in source == nil || !finalImages.contains(source!) }.map(\.key).sorted()
        }
    }

    /// The reader: every path given is opened with pycdlib and every file in it read to the end.
    static let checkerScript = """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from read_context import read_image
        out = {}
        for path in sys.argv[2:]:
            try:
                volume_id, files = read_image(path)
                mon = files.get("etc/monitoring.conf")
                out[path] = {"ok": True, "monitoring": mon[1].decode("utf-8", "replace") if mon else None}
            except Exception as error:
                out[path] = {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}
        json.dump(out, sys.stdout)
        """

    func inspect(connection: Connection) throws -> Inspection {
        var inspection = Inspection()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: images)) ?? []
        for name in entries {
            if ImageNaming.parse(name) != nil {
                inspection.finalImages.insert(images + "/" + name)
            } else if name.hasPrefix(".") && name.contains(".tmp-") {
                inspection.temporaries.append(name)
            } else {
                inspection.others.append(name)
            }
        }
        for name in names {
            let domain = try connection.domain(named: name)
            inspection.live[name] = try domain.cdroms().first?.sourceFile
            inspection.persistent[name] = try domain.cdroms(inactive: true).first?.sourceFile
        }
        let attached = inspection.live.values.compactMap { $0 }
        let paths = Array(inspection.finalImages.union(attached)).sorted()
        guard !paths.isEmpty else { return inspection }
        let script = directory + "/check_images.py"
        if !FileManager.default.fileExists(atPath: script) {
            try Self.checkerScript.write(toFile: script, atomically: true, encoding: .utf8)
        }
        let harness = URL(fileURLWithPath: ContextImageReader.script).deletingLastPathComponent().path
        let output = try ProcessRunner.run("/usr/bin/python3", [script, harness] + paths)
        let results = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [String: Any]] ?? [:]
        for (path, result) in results {
            if result["ok"] as? Bool == true {
                if let text = result["monitoring"] as? String { inspection.monitoring[path] = text }
            } else {
                inspection.unreadable[path] = result["error"] as? String ?? "?"
            }
        }
        return inspection
    }

    // MARK: Teardown

    /// Destroys and undefines the VMs, stops the host, reports crashes, removes the directory.
    func tearDown(removeDirectory: Bool = true) {
        for name in names {
            _ = try? host.virsh(["destroy", name])
            _ = try? host.virsh(["undefine", name])
        }
        host.stopBlocking()
        recordCrashes()
        if removeDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

extension ReliabilityRig {
    /// Fails the test with "libvirtd crashed with SIGSEGV (pid N, core PATH)" and the backtrace
    /// for every process of this rig that crashed: the host's libvirtd and virtlogd (call after
    /// the host stopped, so cores are complete) and every daemon started by ``startDaemon(logLevel:unblockedSignals:environment:)``.
    func recordCrashes() {
        for crash in daemons.compactMap(\.crash) + host.crashes() {
            print("[crash] \(crash)")
            Issue.record(Comment(rawValue: crash.description))
        }
    }
}

/// Counts log lines of `text` containing all of `fragments`.
func countLines(_ text: Substring, containing fragments: String...) -> Int {
    text.split(separator: "\n").filter { line in fragments.allSatisfy { line.contains($0) } }.count
}

/// A small deterministic generator (SplitMix64), so random kill points can be replayed by seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
