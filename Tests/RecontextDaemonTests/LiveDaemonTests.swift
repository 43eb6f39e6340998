import Foundation
import RecontextCore
import TestSupport
import Testing
import Virt

/// `recontextd run` (the real binary) against a real libvirtd with QEMU started by the tests.
///
/// Serialized: every daemon here manages the opted-in domains of the shared test host.
@Suite(
    "real libvirtd: recontextd run, apply, render, status",
    .serialized, .realPart(missing: LibvirtTestHost.skipReason))
struct LiveDaemonTests {
    /// A daemon configuration for a test, written to a file.
    struct Setup {
        let host: LibvirtTestHost
        let directory: String
        let images: String
        let state: String
        let config: String

        init(_ label: String, host: LibvirtTestHost) throws {
            self.host = host
            directory = try TestDirectories.makeImageDirectory(label)
            images = directory + "/images"
            state = directory + "/state"
            config = directory + "/recontextd.yaml"
        }

        func writeConfig(endpoint: String, extra: String = "") throws {
            let yaml = """
                libvirt:
                  uri: "\(host.uri)"
                images:
                  directory: \(images)
                  mode: "0644"
                host:
                  name: test-host-a
                  variables:
                    monitoring_endpoint: \(endpoint)
                    ntp_server: 127.0.0.123
                  secret-variables: []
                context:
                  default-format: nocloud
                pipeline:
                  reconcile-interval: 0
                  retry:
                    attempts: 3
                    initial-backoff: 50ms
                \(extra)
                """
            try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        }

        var globalArguments: [String] { ["--config", config, "--state-dir", state] }
    }

    static let contextMetadata = """
        <context format="nocloud"><var name="role">web</var>\
        <file path="etc/monitoring.conf" template="yes">endpoint={{host.monitoring_endpoint}} role={{vm.role}}</file>\
        </context>
        """

    /// Polls the domain's CD-ROM until it holds an image other than `previous` in `directory`.
    static func waitForImage(
        _ connection: Connection, _ name: String, directory: String, other previous: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> String? {
        try await eventuallyValue(timeout: timeout, every: .milliseconds(50)) { () -> String? in
            let source = try connection.domain(named: name).cdroms().first?.sourceFile
            guard let source, source.hasPrefix(directory + "/"), source != previous else { return nil }
            return source
        }
    }

    /// Polls until the domain's CD-ROM holds one of our images whose `path` file satisfies
    /// `matches` (read back by pycdlib); returns the image path.
    static func waitForContent(
        _ connection: Connection, _ name: String, directory: String, file: String, timeout: Duration = .seconds(30),
        _ matches: (String) -> Bool
    ) async throws -> String? {
        try await AttachedImage.wait(on: connection, name, directory: directory, timeout: timeout) { _, _, image in
            matches(image.text(file))
        }?.path
    }

    /// Waits until `path` no longer exists (the pipeline removes an old image only after the new
    /// one is attached live and in the persistent definition, a moment after the swap).
    static func waitUntilGone(_ path: String, timeout: Duration = .seconds(10)) async -> Bool {
        await eventually(timeout: timeout, every: .milliseconds(20)) { !FileManager.default.fileExists(atPath: path) }
    }

    static func defineVM(
        _ host: LibvirtTestHost, _ name: String, source: String?, bus: LibvirtTestHost.CDROM.Bus = .sata
    ) throws {
        try host.defineDomain(
            LibvirtTestHost.minimalDomainXML(
                name: name, cdroms: [.init(bus: bus, target: bus == .ide ? "hdc" : "sda", source: source)],
                type: LibvirtTestHost.preferredDomainType))
    }

    static func setContext(_ host: LibvirtTestHost, _ name: String, _ xml: String, live: Bool) throws {
        var arguments = [
            "metadata", name, "--uri", ContextMetadata.namespaceURI, "--key", "recontext", "--set", xml, "--config",
        ]
        if live { arguments.append("--live") }
        _ = try host.virsh(arguments)
    }

    static func cleanUp(_ host: LibvirtTestHost, _ names: [String]) {
        for name in names {
            _ = try? host.virsh(["destroy", name])
            _ = try? host.virsh(["undefine", name])
        }
    }

    @Test(
        "an opted-in VM gets this host's facts at start; metadata changes and SIGHUP make new generations; others untouched"
    )
    func startMetadataReload() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let setup = try Setup("daemon-start", host: host)
        defer { try? FileManager.default.removeItem(atPath: setup.directory) }
        try setup.writeConfig(endpoint: "http://mon-a.example:9090")
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let managed = "managed-\(suffix)"
        let managedIDE = "managed-ide-\(suffix)"
        let unmanaged = "unmanaged-\(suffix)"
        let unmanagedMedia = setup.directory + "/unmanaged.iso"
        try TestDirectories.writeMedia(unmanagedMedia, tag: "keep")
        defer { Self.cleanUp(host, [managed, managedIDE, unmanaged]) }
        try Self.defineVM(host, managed, source: nil)
        try Self.defineVM(host, managedIDE, source: nil, bus: .ide)
        try Self.defineVM(host, unmanaged, source: unmanagedMedia)
        try Self.setContext(host, managed, Self.contextMetadata, live: false)
        try Self.setContext(host, managedIDE, Self.contextMetadata, live: false)

        let daemon = try RecontextdProcess(["run"] + setup.globalArguments + ["--log-level", "debug"])
        #expect(await daemon.waitForLog("connected to libvirt"), "\(daemon.logText)")

        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        _ = try host.virsh(["start", managed])
        _ = try host.virsh(["start", managedIDE])
        _ = try host.virsh(["start", unmanaged])

        // Start: generation 1 with this host's facts.
        let first = try #require(
            try await Self.waitForImage(connection, managed, directory: setup.images), "\(daemon.logText)")
        let firstImage = try ContextImageReader.read(first)
        #expect(firstImage.volumeID == "cidata")
        #expect(firstImage.text("etc/monitoring.conf") == "endpoint=http://mon-a.example:9090 role=web")
        #expect(firstImage.text("meta-data").contains("instance-id"))
        #expect(firstImage.generation["generation"] as? Int == 1)
        #expect(firstImage.generation["host"] as? String == "test-host-a")
        let domain = try connection.domain(named: managed)
        let applied = try AppliedMetadata.parse(
            try #require(try domain.metadata(namespace: AppliedMetadata.namespaceURI, impact: .live)))
        #expect(applied.generation == 1)
        #expect(applied.host == "test-host-a")
        #expect(applied.imagePath == first)
        // Persistent definition names the new image too.
        #expect(try domain.cdroms(inactive: true).first?.sourceFile == first)
        let ideImage = try #require(try await Self.waitForImage(connection, managedIDE, directory: setup.images))
        #expect(try ContextImageReader.read(ideImage).text("etc/monitoring.conf").contains("mon-a"))

        // A metadata change (as an operator does it, with virsh) reaches the CD-ROM as generation 2.
        try Self.setContext(
            host, managed, Self.contextMetadata.replacingOccurrences(of: ">web<", with: ">db<"), live: true)
        let second = try #require(
            try await Self.waitForImage(connection, managed, directory: setup.images, other: first))
        let secondImage = try ContextImageReader.read(second)
        #expect(secondImage.text("etc/monitoring.conf") == "endpoint=http://mon-a.example:9090 role=db")
        #expect(secondImage.generation["generation"] as? Int == 2)
        #expect(await Self.waitUntilGone(first), "the old image is removed after the swap")

        // SIGHUP after a host-variable change: every managed VM gets a new generation.
        let ideBefore = try connection.domain(named: managedIDE).cdroms().first?.sourceFile
        try setup.writeConfig(endpoint: "http://mon-b.example:9090")
        daemon.signal(SIGHUP)
        let third = try #require(
            try await Self.waitForImage(connection, managed, directory: setup.images, other: second))
        #expect(
            try ContextImageReader.read(third).text("etc/monitoring.conf")
                == "endpoint=http://mon-b.example:9090 role=db")
        let ideAfter = try #require(
            try await Self.waitForImage(connection, managedIDE, directory: setup.images, other: ideBefore))
        #expect(try ContextImageReader.read(ideAfter).text("etc/monitoring.conf").contains("mon-b"))

        // The domain without metadata is never touched.
        #expect(try connection.domain(named: unmanaged).cdroms().first?.sourceFile == unmanagedMedia)
        #expect(try connection.domain(named: unmanaged).metadata(namespace: AppliedMetadata.namespaceURI) == nil)

        // A reload with an unchanged configuration changes nothing.
        daemon.signal(SIGHUP)
        #expect(await daemon.waitForLog("reloading configuration", count: 2))
        #expect(await daemon.waitForLog("context unchanged"))
        // A sleep on purpose: nothing may change within it (a wrong swap would come right after).
        try await Task.sleep(for: .milliseconds(300))
        #expect(try connection.domain(named: managed).cdroms().first?.sourceFile == third)

        #expect(await daemon.stop() == 0)
        #expect(daemon.logText.contains("context applied"))
        #expect(daemon.logText.contains("duration.insert_ms"))
    }

    @Test("apply, render and status behave as documented")
    func applyRenderStatus() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let setup = try Setup("daemon-cli", host: host)
        defer { try? FileManager.default.removeItem(atPath: setup.directory) }
        try setup.writeConfig(endpoint: "http://mon-c.example:9090")
        let name = "cli-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Self.cleanUp(host, [name]) }
        try Self.defineVM(host, name, source: nil, bus: .scsi)
        try Self.setContext(
            host, name, Self.contextMetadata.replacingOccurrences(of: "nocloud", with: "configdrive"), live: false)
        _ = try host.virsh(["start", name])
        let connection = try Connection.open(host.uri)
        defer { connection.close() }

        // render writes what would be attached, and changes nothing.
        let rendered = setup.directory + "/rendered.iso"
        let render = try RecontextdProcess.runCommand(["render", name, "--output", rendered] + setup.globalArguments)
        #expect(render.status == 0, "\(render.standardError)")
        let renderedImage = try ContextImageReader.read(rendered)
        #expect(renderedImage.volumeID == "config-2")
        let metaData = try #require(renderedImage.files["openstack/latest/meta_data.json"]?.text)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(metaData.utf8)) as? [String: Any])
        #expect((json["uuid"] as? String)?.isEmpty == false)
        #expect(try connection.domain(named: name).cdroms().first?.sourceFile == nil)

        // status before: managed, not in sync.
        let before = try RecontextdProcess.runCommand(["status", "--json"] + setup.globalArguments)
        #expect(before.status == 0, "\(before.standardError)")
        let beforeRows = try #require(
            try JSONSerialization.jsonObject(with: Data(before.standardOutput.utf8)) as? [[String: Any]])
        let beforeRow = try #require(beforeRows.first { $0["name"] as? String == name })
        #expect(beforeRow["in_sync"] as? Bool == false)
        #expect(beforeRow["managed"] as? Bool == true)

        // apply runs the pipeline now.
        let apply = try RecontextdProcess.runCommand(["apply", name] + setup.globalArguments)
        #expect(apply.status == 0, "\(apply.standardError)")
        #expect(apply.standardOutput.contains("applied generation 1"), "\(apply.standardOutput)")
        let attached = try #require(try connection.domain(named: name).cdroms().first?.sourceFile)
        #expect(
            try ContextImageReader.read(attached).files["openstack/latest/meta_data.json"]?.sha256
                == renderedImage.files["openstack/latest/meta_data.json"]?.sha256)

        // apply again: unchanged.
        let again = try RecontextdProcess.runCommand(["apply", name] + setup.globalArguments)
        #expect(again.standardOutput.contains("unchanged at generation 1"), "\(again.standardOutput)")

        // status after: in sync, generation 1, this host, last run recorded.
        let after = try RecontextdProcess.runCommand(["status", "--json"] + setup.globalArguments)
        let afterRows = try #require(
            try JSONSerialization.jsonObject(with: Data(after.standardOutput.utf8)) as? [[String: Any]])
        let row = try #require(afterRows.first { $0["name"] as? String == name })
        #expect(row["in_sync"] as? Bool == true)
        #expect(row["applied_generation"] as? Int == 1)
        #expect(row["applied_host"] as? String == "test-host-a")
        #expect((row["last_run"] as? [String: Any])?["result"] as? String == "unchanged")
        let table = try RecontextdProcess.runCommand(["status"] + setup.globalArguments)
        #expect(table.standardOutput.contains(name))

        // An unknown domain is a clear error.
        let unknown = try RecontextdProcess.runCommand(["apply", "no-such-domain"] + setup.globalArguments)
        #expect(unknown.status != 0)
        #expect(unknown.standardError.contains("no-such-domain"))
    }

    @Test("libvirtd restarts: the daemon reconnects, subscribes again and reconciles what it missed")
    func reconnect() async throws {
        var configuration = LibvirtTestHost.Configuration.numbered(8)
        configuration.sharedDirectories = [TestDirectories.sharedImages]
        let host = try await LibvirtTestHost.start(configuration)
        defer { host.stopBlocking() }
        let setup = try Setup("daemon-reconnect", host: host)
        defer { try? FileManager.default.removeItem(atPath: setup.directory) }
        try setup.writeConfig(endpoint: "http://mon-r.example:9090")
        let name = "reconnect-\(UUID().uuidString.prefix(6).lowercased())"
        try Self.defineVM(host, name, source: nil)
        try Self.setContext(host, name, Self.contextMetadata, live: false)
        _ = try host.virsh(["start", name])

        let daemon = try RecontextdProcess(["run"] + setup.globalArguments)
        let connection = try Connection.open(host.uri)
        let first = try #require(
            try await Self.waitForImage(connection, name, directory: setup.images), "\(daemon.logText)")
        connection.close()

        // Restart libvirtd and change the metadata at once: the change happens while the daemon
        // is disconnected or just reconnecting, so its event may be missed; the reconcile after
        // the reconnect must make it good either way.
        try host.restartLibvirtd()
        try Self.setContext(
            host, name, Self.contextMetadata.replacingOccurrences(of: ">web<", with: ">cache<"), live: true)
        #expect(await daemon.waitForLog("reconnected to libvirt"), "\(daemon.logText)")
        let again = try Connection.open(host.uri)
        defer { again.close() }
        let second = try await Self.waitForContent(again, name, directory: setup.images, file: "etc/monitoring.conf") {
            $0.contains("role=cache")
        }
        #expect(second != nil && second != first, "\(daemon.logText)")

        // Events flow again after the reconnect.
        try Self.setContext(
            host, name, Self.contextMetadata.replacingOccurrences(of: ">web<", with: ">queue<"), live: true)
        let third = try await Self.waitForContent(again, name, directory: setup.images, file: "etc/monitoring.conf") {
            $0.contains("role=queue")
        }
        #expect(third != nil, "\(daemon.logText)")
        #expect(await daemon.stop() == 0)
        _ = try? host.virsh(["destroy", name])
    }

    @Test("the periodic reconcile puts the desired image back when someone swapped the media by hand")
    func periodicReconcile() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let setup = try Setup("daemon-periodic", host: host)
        defer { try? FileManager.default.removeItem(atPath: setup.directory) }
        try setup.writeConfig(endpoint: "http://mon-p.example:9090")
        try String(contentsOfFile: setup.config, encoding: .utf8)
            .replacingOccurrences(of: "reconcile-interval: 0", with: "reconcile-interval: 1s")
            .write(toFile: setup.config, atomically: true, encoding: .utf8)
        let name = "periodic-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Self.cleanUp(host, [name]) }
        try Self.defineVM(host, name, source: nil)
        try Self.setContext(host, name, Self.contextMetadata, live: false)
        _ = try host.virsh(["start", name])
        let daemon = try RecontextdProcess(["run"] + setup.globalArguments)
        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        let first = try #require(try await Self.waitForImage(connection, name, directory: setup.images))

        let foreign = setup.directory + "/foreign.iso"
        try TestDirectories.writeMedia(foreign, tag: "foreign")
        // Once the daemon's run is over (it holds libvirt's job on the domain until then), swap
        // the media by hand; retried, as libvirt refuses a change while another job runs.
        #expect(await daemon.waitForLog("context applied"))
        let swapped = await eventually(timeout: .seconds(5), every: .milliseconds(250)) {
            (try? host.virsh(["change-media", name, "sda", foreign, "--update", "--live", "--force"])) != nil
        }
        #expect(swapped)
        #expect(try connection.domain(named: name).cdroms().first?.sourceFile == foreign)
        let restored = try #require(
            try await Self.waitForImage(connection, name, directory: setup.images, other: first, timeout: .seconds(20)))
        #expect(try ContextImageReader.read(restored).generation["generation"] as? Int == 2)
        #expect(FileManager.default.fileExists(atPath: foreign), "an image that is not ours is never removed")
        #expect(await daemon.stop() == 0)
    }

    @Test("check-config lists every problem with file, line and key, and exits 78")
    func checkConfig() throws {
        let path = NSTemporaryDirectory() + "/recontextd-bad-\(UUID().uuidString).yaml"
        try "images:\n  mode: rw\npipeline:\n  concurrency: 0\n  bogus: 1\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let result = try RecontextdProcess.runCommand(["check-config", "--config", path])
        #expect(result.status == 78)
        #expect(result.standardError.contains("\(path):2: images.mode"))
        #expect(result.standardError.contains("\(path):4: pipeline.concurrency"))
        #expect(result.standardError.contains("\(path):5: pipeline.bogus"))
        let run = try RecontextdProcess.runCommand(["run", "--config", path])
        #expect(run.status == 78)
    }
}
