import Foundation
import ISOBuilder
import Testing

// MARK: - Building from a directory on disk

/// `ISOImage(volumeID:contentsOfDirectory:)` takes regular files and directories with their modes,
/// like `genisoimage -R -J -V ID DIR`, and refuses symbolic links and special files.
@Suite("Building from a directory on disk")
struct DirectoryInputTests {
    /// Creates a file with contents and mode.
    private func makeFile(_ path: String, _ text: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try #require(chmod(path, mode) == 0)
    }

    /// Creates a directory with a mode.
    private func makeDirectory(_ path: String, mode: mode_t) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try #require(chmod(path, mode) == 0)
    }

    /// A small context directory: nested, hidden file, empty directory, varied modes.
    private func makeTree(in root: String) throws {
        try #require(chmod(root, 0o750) == 0)
        try makeFile(root + "/meta-data", "instance-id: iid-1\n", mode: 0o644)
        try makeFile(root + "/user-data", "#cloud-config\n", mode: 0o600)
        try makeFile(root + "/.hidden", "hidden\n", mode: 0o400)
        try makeDirectory(root + "/openstack", mode: 0o755)
        try makeDirectory(root + "/openstack/latest", mode: 0o700)
        try makeFile(root + "/openstack/latest/meta_data.json", "{}\n", mode: 0o444)
        try makeFile(root + "/openstack/latest/run.sh", "#!/bin/sh\n", mode: 0o755)
        try makeDirectory(root + "/empty", mode: 0o711)
    }

    @Test("files and directories come in with their modes and read back like genisoimage's image")
    func buildsFromDirectory() throws {
        let scratch = try TemporaryDirectory()
        defer { withExtendedLifetime(scratch) {} }
        let source = scratch.path + "/context"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: false)
        try makeTree(in: source)

        let image = try ISOImage(volumeID: "cidata", contentsOfDirectory: source, modificationTime: Fixtures.time)
        #expect(image.rootDirectoryMode == 0o750)
        #expect(
            image.entries.map(\.path) == [
                ".hidden", "empty", "meta-data", "openstack", "openstack/latest",
                "openstack/latest/meta_data.json", "openstack/latest/run.sh", "user-data",
            ])
        #expect(image.entries.first { $0.path == "user-data" }?.mode == 0o600)
        #expect(image.entries.first { $0.path == "openstack/latest" }?.mode == 0o700)
        #expect(try ISOImage.entries(fromDirectory: source) == image.entries)

        let ours = scratch.path + "/ours.iso"
        try ISOBuilder().writeImage(image, to: ours, mode: 0o644)
        let report = try ReaderReport.read(ours)
        let expected = ExpectedTree(image)
        #expect(report.volumeID == "cidata")
        #expect(report.files == expected.reportFiles)
        #expect(report.directories == expected.directories.mapValues { ReaderReport.Directory(mode: $0) })
        #expect(report.jolietFiles == expected.reportFiles.mapValues(\.sha256))

        // The same tree through genisoimage -R -J -V: the same names, contents and modes.
        let genisoimage = try ExternalTools.require("genisoimage", package: "genisoimage")
        let theirs = scratch.path + "/theirs.iso"
        _ = try ExternalTools.output(genisoimage, ["-quiet", "-R", "-J", "-V", "cidata", "-o", theirs, source])
        let reference = try ReaderReport.read(theirs)
        #expect(report.volumeID == reference.volumeID)
        #expect(report.files == reference.files)
        #expect(report.directories == reference.directories)
        #expect(report.jolietFiles == reference.jolietFiles)
        #expect(report.jolietDirectories == reference.jolietDirectories)
    }

    @Test("a symbolic link inside the directory is refused, naming it")
    func symbolicLinkInside() throws {
        let scratch = try TemporaryDirectory()
        defer { withExtendedLifetime(scratch) {} }
        try makeFile(scratch.path + "/meta-data", "x", mode: 0o644)
        try FileManager.default.createDirectory(atPath: scratch.path + "/sub", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(
            atPath: scratch.path + "/sub/passwd", withDestinationPath: "/etc/passwd")

        let error = try #require(throws: ISOBuilderError.self) { try ISOImage.entries(fromDirectory: scratch.path) }
        #expect(error.code == .symbolicLink)
        #expect(error.path == scratch.path + "/sub/passwd")
        #expect(error.message.contains("symbolic link"))
    }

    @Test("the directory itself being a symbolic link is refused")
    func symbolicLinkTop() throws {
        let scratch = try TemporaryDirectory()
        defer { withExtendedLifetime(scratch) {} }
        try FileManager.default.createDirectory(atPath: scratch.path + "/real", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(
            atPath: scratch.path + "/link", withDestinationPath: scratch.path + "/real")
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOImage(volumeID: "cidata", contentsOfDirectory: scratch.path + "/link")
        }
        #expect(error.code == .symbolicLink)
    }

    @Test("a FIFO inside the directory is refused without blocking")
    func fifoInside() throws {
        let scratch = try TemporaryDirectory()
        defer { withExtendedLifetime(scratch) {} }
        try #require(mkfifo(scratch.path + "/pipe", 0o644) == 0)
        let error = try #require(throws: ISOBuilderError.self) { try ISOImage.entries(fromDirectory: scratch.path) }
        #expect(error.code == .unsupportedFileType)
        #expect(error.path == scratch.path + "/pipe")
    }

    @Test("reading stops at the size limit")
    func sizeLimit() throws {
        let scratch = try TemporaryDirectory()
        defer { withExtendedLifetime(scratch) {} }
        try Data(count: 70_000).write(to: URL(fileURLWithPath: scratch.path + "/a"))
        try Data(count: 70_000).write(to: URL(fileURLWithPath: scratch.path + "/b"))
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOImage.entries(fromDirectory: scratch.path, maxTotalBytes: 100_000)
        }
        #expect(error.code == .imageTooLarge)
        #expect(error.message.contains("100000"))
        #expect(try ISOImage.entries(fromDirectory: scratch.path, maxTotalBytes: 140_000).count == 2)
    }

    @Test("a missing directory is a system error")
    func missingDirectory() throws {
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOImage.entries(fromDirectory: "/nonexistent/recontextd-test")
        }
        #expect(error.code == .systemCall)
        #expect(error.systemErrno == ENOENT)
    }
}
