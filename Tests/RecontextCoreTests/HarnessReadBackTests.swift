import Foundation
import TestSupport
import Testing

@testable import RecontextCore

/// Checks `Tests/Harness/read_context.py` (the independent pycdlib reader the image tests use) on
/// images of every format, built here by genisoimage from the renderer's output.
@Suite("Harness: read_context.py reads every format back through pycdlib")
struct HarnessReadBackTests {
    static let python = "/usr/bin/python3"
    static let genisoimage = "/usr/bin/genisoimage"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Harness/read_context.py").path

    /// What the machine lacks for these tests, or `nil`.
    static let skipReason: String? = {
        guard FileManager.default.isExecutableFile(atPath: genisoimage),
            FileManager.default.isExecutableFile(atPath: python),
            FileManager.default.fileExists(atPath: script)
        else {
            return "needs \(genisoimage) and \(python) with pycdlib (apt-get install genisoimage python3-pycdlib)"
        }
        let probe = try? Fixtures.shell("\(python) -c 'import pycdlib'", in: FileManager.default.temporaryDirectory)
        if probe?.status != 0 {
            return "\(python) cannot import pycdlib (apt-get install python3-pycdlib)"
        }
        return nil
    }()

    @Test(
        "volume id, paths, modes and bytes survive", .realPart(missing: skipReason), arguments: ContextFormat.allCases)
    func readBack(format: ContextFormat) throws {
        var spec = try Fixtures.parse(Fixtures.libvirtXML)
        spec.format = format
        if format != .noCloud { spec.networkConfig = nil }
        if format == .files { spec.userData = nil }
        spec.files.append(FileSpec(path: "data/blob.bin", content: .bytes([0, 255, 1, 254]), mode: 0o600))
        let rendered = try Fixtures.render(spec)
        let record = ContextRenderer.generationRecord(
            generation: 1, host: "hv1", contentHash: rendered.contentHash, domain: Fixtures.domain)
        let files = rendered.files + [record]

        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("src")
        for file in files {
            let url = source.appendingPathComponent(file.path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(file.contents).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: Int(file.mode)], ofItemAtPath: url.path)
        }
        let (_, built) = try Fixtures.shell(
            "\(Self.genisoimage) -quiet -R -J -V '\(rendered.volumeID)' -o image.iso src", in: directory)
        try #require(built == 0)
        let (output, status) = try Fixtures.shell("\(Self.python) '\(Self.script)' image.iso", in: directory)
        try #require(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["volume_id"] as? String == rendered.volumeID)
        let read = try #require(object["files"] as? [String: [String: Any]])
        #expect(read.keys.sorted() == files.map(\.path).sorted())
        for file in files {
            let entry = try #require(read[file.path])
            #expect(entry["mode"] as? String == Validation.formatMode(file.mode), "\(file.path)")
            #expect(
                Data(base64Encoded: entry["base64"] as? String ?? "").map(Array.init) == file.contents, "\(file.path)")
        }
    }
}
