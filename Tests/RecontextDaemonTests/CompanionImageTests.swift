import Foundation
import RecontextCore
import RecontextDaemon
import TestSupport
import Testing

/// `context.companion-directory` read by the daemon, and the packages in a real image, read back
/// by readers we did not write: pycdlib (every file, byte for byte), xorriso (the `.deb` extracted
/// through Rock Ridge) and dpkg-deb (it is the companion's package).
@Suite("the guest companion's packages: read from their directory, read back from the image")
struct CompanionImageTests {
    static let domain = DomainIdentity(name: "web-1", uuid: "4a9c1f0e-7a2b-4c1d-9e8f-0123456789ab")

    static var toolsMissing: String? {
        for program in ["/usr/bin/make", "/usr/bin/dpkg-deb", "/usr/bin/xorriso", "/usr/bin/python3"]
        where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing (Debian packages make, dpkg, xorriso, python3-pycdlib)"
        }
        return nil
    }

    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "recontextd-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("a missing directory, or one without packages, is unavailable with the reason; only package files are taken")
    func load() throws {
        let directory = try Self.temporaryDirectory("companion-load")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(
            CompanionPackages.load(from: directory + "/none")
                == .unavailable(directory: directory + "/none", reason: "no such directory"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/README"))
        guard case .unavailable(_, let reason) = CompanionPackages.load(from: directory) else {
            Issue.record("a directory without packages is not unavailable")
            return
        }
        #expect(reason.contains("no recontext-guest_VERSION_all.deb"))
        try Data("deb".utf8).write(to: URL(fileURLWithPath: directory + "/recontext-guest_1.2.3_all.deb"))
        try Data("tgz".utf8).write(to: URL(fileURLWithPath: directory + "/recontext-guest-1.2.3.tar.gz"))
        try FileManager.default.createDirectory(
            atPath: directory + "/recontext-guest-9.tar.gz", withIntermediateDirectories: false)
        #expect(
            CompanionPackages.load(from: directory)
                == .available(
                    directory: directory,
                    files: [
                        RenderedFile(
                            path: "recontext/guest/recontext-guest-1.2.3.tar.gz", contents: Array("tgz".utf8),
                            mode: 0o644),
                        RenderedFile(
                            path: "recontext/guest/recontext-guest_1.2.3_all.deb", contents: Array("deb".utf8),
                            mode: 0o644),
                    ]))
    }

    @Test(
        "make guest-deb guest-tarball, then a NoCloud image with companion=\"yes\": pycdlib, xorriso and dpkg-deb read the packages back",
        .realPart(missing: toolsMissing))
    func readBack() async throws {
        let work = try Self.temporaryDirectory("companion-image")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try DebianGuest.buildCompanion(into: work + "/packages")
        let packages = CompanionPackages.load(from: work + "/packages")
        guard case .available(_, let files) = packages else {
            Issue.record("\(packages)")
            return
        }
        #expect(files.count == 2, "\(files.map(\.path))")
        var spec = ContextSpec(format: .noCloud)
        spec.companion = true
        let context = try ContextRenderer().render(
            spec: spec, host: HostFacts(name: "hv-a"), domain: Self.domain, defaultFormat: .noCloud,
            companion: packages)
        let store = ISOImageStore(directory: work + "/images", mode: 0o644)
        try store.prepare()
        let record = ContextRenderer.generationRecord(
            generation: 1, host: "hv-a", contentHash: context.contentHash, domain: Self.domain)
        let path = try await store.write(
            context, record: record,
            name: ImageNaming.name(domain: Self.domain, generation: 1, contentHash: context.contentHash))

        let image = try ContextImageReader.read(path)
        #expect(image.volumeID == "cidata")
        for file in files {
            let read = try #require(image.files[file.path], "\(file.path) not in \(image.files.keys.sorted())")
            #expect(read.base64 == Data(file.contents).base64EncodedString(), "\(file.path)")
            #expect(read.mode.hasSuffix("644"), "\(file.path): \(read.mode)")
        }
        let deb = try #require(files.first { $0.path.hasSuffix("_all.deb") })
        let copy = work + "/extracted.deb"
        try ProcessRunner.run(
            "/usr/bin/xorriso", ["-osirrox", "on", "-indev", path, "-extract", "/" + deb.path, copy])
        let package = try ProcessRunner.run("/usr/bin/dpkg-deb", ["--field", copy, "Package", "Architecture"])
        #expect(package == "Package: recontext-guest\nArchitecture: all\n", "\(package)")
    }

    /// The daemon binary links FoundationEssentials only, the test process Foundation too, and the two
    /// differ where values are cast from `Any` (FileManager's attributes: a size that is an `Int` under
    /// Foundation was not one under FoundationEssentials, and every package read "larger than" the
    /// limit; found by DebianGuestTests). So the packages are read here by the binary itself.
    @Test(
        "recontextd render (the binary, FoundationEssentials only) puts the built packages into a companion VM's image",
        .realPart(missing: toolsMissing))
    func renderedByTheBinary() async throws {
        let work = try Self.temporaryDirectory("companion-render")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try DebianGuest.buildCompanion(into: work + "/packages")
        let node = try TestDriverNode(directory: work)
        let xml = try String(contentsOfFile: node.path, encoding: .utf8)
        try xml.replacingOccurrences(of: "format=\"nocloud\">", with: "format=\"nocloud\" companion=\"yes\">")
            .write(toFile: node.path, atomically: true, encoding: .utf8)
        let config = try node.writeConfiguration(
            directory: work, extra: "context:\n  companion-directory: \(work)/packages")
        let output = work + "/rendered.iso"
        let render = try RecontextdProcess.runCommand([
            "render", TestDriverNode.managedName, "--output", output, "--config", config, "--state-dir",
            work + "/state",
        ])
        #expect(render.status == 0, "\(render.standardError)")
        let image = try ContextImageReader.read(output)
        let packages = try FileManager.default.contentsOfDirectory(atPath: work + "/packages").sorted()
        #expect(packages.count == 2, "\(packages)")
        for name in packages {
            let read = try #require(
                image.files["recontext/guest/" + name], "\(name) not in \(image.files.keys.sorted())")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: work + "/packages/" + name))
            #expect(read.base64 == bytes.base64EncodedString(), "\(name)")
        }
    }
}
