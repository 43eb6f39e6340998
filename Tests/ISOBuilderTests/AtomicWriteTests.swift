import Digest
import Foundation
import ISOBuilder
import Testing

// MARK: - Writing image files

/// `writeImage` creates the file atomically with the requested mode and group, and never follows
/// symbolic links.
@Suite("Writing image files")
struct AtomicWriteTests {
    /// `st_mode`, `st_gid`, `st_ino` of a path, not following links.
    private func status(_ path: String) throws -> stat {
        var result = stat()
        try #require(lstat(path, &result) == 0, "lstat \(path): \(String(cString: strerror(errno)))")
        return result
    }

    @Test("the file appears with the requested mode, whatever the umask, and no temporary file remains")
    func modeAndNoTemporaryFile() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        let image = Fixtures.tenFiles()

        let previous = umask(0o077)
        defer { umask(previous) }
        let written = try ISOBuilder().writeImage(image, to: path, mode: 0o644)

        #expect(try directory.contents() == ["vm1.iso"])
        let info = try status(path)
        #expect(info.st_mode & S_IFMT == S_IFREG)
        #expect(info.st_mode & 0o7777 == 0o644)
        #expect(Int(info.st_size) == written)
        let onDisk = try #require(FileManager.default.contents(atPath: path))
        #expect(SHA256.hex(Array(onDisk)) == SHA256.hex(try ISOBuilder().makeImage(image)))
    }

    @Test("an existing file is replaced by a new file (new inode), atomically")
    func replacesExistingFile() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        try Data("old image".utf8).write(to: URL(fileURLWithPath: path))
        let oldInode = try status(path).st_ino

        try ISOBuilder().writeImage(Fixtures.tenFiles(), to: path, mode: 0o600)

        let info = try status(path)
        #expect(info.st_ino != oldInode)
        #expect(info.st_mode & 0o7777 == 0o600)
        #expect(try ReaderReport.read(path).volumeID == "CONTEXT")
        #expect(try directory.contents() == ["vm1.iso"])
    }

    @Test("the group is set when given")
    func group() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        // Root may give any group; anyone else only their own groups.
        let group: gid_t = geteuid() == 0 ? 4242 : getegid()
        try ISOBuilder().writeImage(Fixtures.tenFiles(), to: path, mode: 0o640, group: group)
        let info = try status(path)
        #expect(info.st_gid == group)
        #expect(info.st_mode & 0o7777 == 0o640)
    }

    @Test("written without the flushes, the file is complete under its name; makeDurable flushes it later")
    func deferredDurability() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        let image = Fixtures.tenFiles()

        let written = try ISOBuilder().writeImage(image, to: path, mode: 0o640, durable: false)

        #expect(try directory.contents() == ["vm1.iso"], "no temporary file remains")
        #expect(try status(path).st_mode & 0o7777 == 0o640)
        let onDisk = try #require(FileManager.default.contents(atPath: path))
        #expect(onDisk.count == written)
        #expect(SHA256.hex(Array(onDisk)) == SHA256.hex(try ISOBuilder().makeImage(image)))
        try ISOBuilder.makeDurable(path)
        #expect(try directory.contents() == ["vm1.iso"])
    }

    @Test("makeDurable names a missing file, and never follows a symbolic link")
    func makeDurableRefusals() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let missing = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder.makeDurable(directory.path + "/gone.iso")
        }
        #expect(missing.code == .systemCall)
        #expect(missing.systemErrno == ENOENT)
        #expect(missing.path == directory.path + "/gone.iso")

        let target = directory.path + "/precious"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/vm1.iso", withDestinationPath: target)
        let link = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder.makeDurable(directory.path + "/vm1.iso")
        }
        #expect(link.systemErrno == ELOOP)
    }

    @Test("a symbolic link at the destination is refused, and neither it nor its target is touched")
    func symbolicLinkDestination() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let target = directory.path + "/precious"
        let link = directory.path + "/vm1.iso"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder().writeImage(Fixtures.tenFiles(), to: link, mode: 0o644)
        }
        #expect(error.code == .symbolicLink)
        #expect(error.path == link)
        #expect(error.description.contains("symbolic link"))
        #expect(try status(link).st_mode & S_IFMT == S_IFLNK)
        #expect(FileManager.default.contents(atPath: target) == Data("precious".utf8))
        #expect(try directory.contents() == ["precious", "vm1.iso"])
    }

    @Test("a destination whose directory is a symbolic link is refused, and nothing is written there")
    func symbolicLinkParent() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let real = directory.path + "/real"
        try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/link", withDestinationPath: real)

        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder().writeImage(Fixtures.tenFiles(), to: directory.path + "/link/vm1.iso", mode: 0o644)
        }
        #expect(error.code == .symbolicLink)
        #expect(error.path == directory.path + "/link")
        #expect(try FileManager.default.contentsOfDirectory(atPath: real).isEmpty)
    }

    @Test("a directory at the destination is refused")
    func directoryDestination() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder().writeImage(Fixtures.tenFiles(), to: path, mode: 0o644)
        }
        #expect(error.code == .unsupportedFileType)
        #expect(try directory.contents() == ["vm1.iso"])
    }

    @Test("a missing directory is a system error naming it")
    func missingDirectory() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder().writeImage(Fixtures.tenFiles(), to: directory.path + "/missing/vm1.iso", mode: 0o644)
        }
        #expect(error.code == .systemCall)
        #expect(error.systemErrno == ENOENT)
        #expect(error.path == directory.path + "/missing")
        #expect(!error.isTransient)
    }

    @Test("a file mode with more than permission bits is refused before anything is written")
    func invalidFileMode() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder().writeImage(Fixtures.tenFiles(), to: directory.path + "/vm1.iso", mode: 0o100644)
        }
        #expect(error.code == .invalidMode)
        #expect(try directory.contents().isEmpty)
    }

    @Test("a relative destination is written relative to the working directory")
    func relativeDestination() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        // Do not change the process's working directory (tests run in parallel); use a path relative
        // to the current one that resolves into the temporary directory instead.
        let current = FileManager.default.currentDirectoryPath
        let relative =
            String(repeating: "../", count: current.split(separator: "/").count) + directory.path.dropFirst()
            + "/vm1.iso"
        try ISOBuilder().writeImage(Fixtures.tenFiles(), to: relative, mode: 0o644)
        #expect(try directory.contents() == ["vm1.iso"])
    }
}
