import Foundation
import Logging
import RecontextCore
import RecontextDaemon
import TestSupport
import Testing

/// Every format built by the daemon's own image path (renderer + in-process ISO builder) and read
/// back by readers we did not write: pycdlib for the image, python3-yaml for meta-data, Python's
/// json for meta_data.json, `/bin/sh` for context.sh.
@Suite("formats read back by pycdlib, yaml, json and sh")
struct FormatReadBackTests {
    static let domain = DomainIdentity(name: "web-1", uuid: "4a9c1f0e-7a2b-4c1d-9e8f-0123456789ab")
    static let tricky = "it's \"quoted\" $HOME `cmd` \\ back\nsecond line"
    static let host = HostFacts(
        name: "hv-b", variables: ["monitoring_endpoint": "http://10.9.0.2:9090", "zone": "rack-7", "note": tricky])

    static func spec(_ format: ContextFormat) -> ContextSpec {
        ContextSpec(
            format: format,
            variables: [VariableSpec(name: "role", value: "web"), VariableSpec(name: "quote", value: tricky)],
            files: [
                FileSpec(
                    path: "etc/app.conf", content: .text("endpoint={{host.monitoring_endpoint}}\n"), isTemplate: true)
            ],
            userData: format == .noCloud || format == .configDrive ? .text("#cloud-config\nruncmd: [true]\n") : nil)
    }

    static func build(_ format: ContextFormat) async throws -> (ContextImageReader.Image, RenderedContext) {
        let context = try ContextRenderer().render(
            spec: spec(format), host: host, domain: domain, defaultFormat: .noCloud)
        let directory = NSTemporaryDirectory() + "recontextd-formats-\(UUID().uuidString)"
        let store = ISOImageStore(directory: directory, mode: 0o644)
        try store.prepare()
        let name = ImageNaming.name(domain: domain, generation: 3, contentHash: context.contentHash)
        let record = ContextRenderer.generationRecord(
            generation: 3, host: host.name, contentHash: context.contentHash, domain: domain)
        let path = try await store.write(context, record: record, name: name)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return (try ContextImageReader.read(path), context)
    }

    static func python(_ code: String, stdin file: String) throws -> String {
        try ProcessRunner.run("/usr/bin/python3", ["-c", code, file])
    }

    @Test("NoCloud: volume cidata, meta-data is YAML with instance-id and local-hostname, user-data kept")
    func noCloud() async throws {
        let (image, context) = try await Self.build(.noCloud)
        #expect(image.volumeID == "cidata")
        let file = NSTemporaryDirectory() + "meta-data-\(UUID().uuidString)"
        try image.text("meta-data").write(toFile: file, atomically: true, encoding: .utf8)
        let parsed = try Self.python(
            "import sys,yaml,json; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", stdin: file)
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as? [String: Any])
        #expect(meta["instance-id"] as? String == Self.domain.uuid)
        #expect(meta["local-hostname"] as? String == "web-1")
        #expect(image.text("user-data") == "#cloud-config\nruncmd: [true]\n")
        #expect(image.text("etc/app.conf") == "endpoint=http://10.9.0.2:9090\n")
        #expect(image.generation["generation"] as? Int == 3)
        #expect(image.generation["content_hash"] as? String == context.contentHash)
    }

    @Test("ConfigDrive: volume config-2, meta_data.json is JSON with uuid, user_data kept")
    func configDrive() async throws {
        let (image, _) = try await Self.build(.configDrive)
        #expect(image.volumeID == "config-2")
        let text = image.text("openstack/latest/meta_data.json")
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(meta["uuid"] as? String == Self.domain.uuid)
        #expect(meta["availability_zone"] as? String == "rack-7")
        #expect((meta["meta"] as? [String: Any])?["role"] as? String == "web")
        #expect(image.text("openstack/latest/user_data") == "#cloud-config\nruncmd: [true]\n")
    }

    @Test("OpenNebula: volume CONTEXT, context.sh sourced by sh gives back every value exactly")
    func openNebula() async throws {
        let (image, _) = try await Self.build(.openNebula)
        #expect(image.volumeID == "CONTEXT")
        let file = NSTemporaryDirectory() + "context-\(UUID().uuidString).sh"
        try image.text("context.sh").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for (key, expected) in [
            ("MONITORING_ENDPOINT", "http://10.9.0.2:9090"), ("ROLE", "web"), ("QUOTE", Self.tricky),
            ("NOTE", Self.tricky),
            ("HOSTNAME", "web-1"),
        ] {
            let value = try ProcessRunner.run("/bin/sh", ["-c", ". \"$1\"; printf %s \"$\(key)\"", "sh", file])
            #expect(value == expected, "\(key)")
        }
    }

    @Test("plain files: the files and the generation record, nothing else")
    func files() async throws {
        let (image, _) = try await Self.build(.files)
        #expect(image.volumeID == ContextFormat.defaultFilesVolumeID)
        #expect(image.text("etc/app.conf") == "endpoint=http://10.9.0.2:9090\n")
        #expect(image.files.keys.allSatisfy { $0 == "etc/app.conf" || $0.hasPrefix("recontext/") })
    }
}

/// `recontextd build-iso`, checked by isoinfo, xorriso and pycdlib.
@Suite("recontextd build-iso")
struct BuildISOCommandTests {
    @Test(
        "an image built from a folder reads back byte-exact by isoinfo, xorriso and pycdlib",
        arguments: ["cidata", "config-2", "CONTEXT"])
    func buildISO(volumeID: String) throws {
        let root = NSTemporaryDirectory() + "recontextd-build-iso-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let input = root + "/in"
        try FileManager.default.createDirectory(atPath: input + "/openstack/latest", withIntermediateDirectories: true)
        let files = [
            "meta-data": "instance-id: i-1\nlocal-hostname: vm\n", "user-data": "#cloud-config\n{}\n",
            "openstack/latest/meta_data.json": "{\"uuid\": \"x\"}",
        ]
        for (path, text) in files { try text.write(toFile: input + "/" + path, atomically: true, encoding: .utf8) }
        let output = root + "/out.iso"
        let result = try RecontextdProcess.runCommand(["build-iso", "--volume-id", volumeID, "--output", output, input])
        #expect(result.status == 0, "\(result.standardError)")

        let isoinfo = try ProcessRunner.run("/usr/bin/isoinfo", ["-d", "-i", output])
        #expect(isoinfo.contains("Volume id: \(volumeID)\n"))
        let read = try ContextImageReader.read(output)
        #expect(read.volumeID == volumeID)
        for (path, text) in files {
            #expect(read.text(path) == text, "pycdlib \(path)")
            let viaIsoinfo = try ProcessRunner.run("/usr/bin/isoinfo", ["-R", "-i", output, "-x", "/" + path])
            #expect(viaIsoinfo == text, "isoinfo \(path)")
            let viaJoliet = try ProcessRunner.run("/usr/bin/isoinfo", ["-J", "-i", output, "-x", "/" + path])
            #expect(viaJoliet == text, "isoinfo Joliet \(path)")
        }
        let extract = root + "/xorriso"
        _ = try ProcessRunner.run(
            "/usr/bin/xorriso", ["-abort_on", "FAILURE", "-indev", output, "-osirrox", "on", "-extract", "/", extract])
        for (path, text) in files {
            #expect((try? String(contentsOfFile: extract + "/" + path, encoding: .utf8)) == text, "xorriso \(path)")
        }
    }

    @Test("a missing folder is a clear error")
    func missingFolder() throws {
        let result = try RecontextdProcess.runCommand([
            "build-iso", "--volume-id", "cidata", "--output", "/tmp/x.iso", "/nonexistent-\(UUID())",
        ])
        #expect(result.status != 0)
        #expect(result.standardError.contains("nonexistent"))
    }
}
