import Foundation
import ISOBuilder
import Testing

// MARK: - Validation

/// Invalid input is refused with a clear error before libisofs sees it; limits are exact.
@Suite("Validation")
struct ValidationTests {
    /// One invalid image and the error it must give.
    struct InvalidCase: Sendable, CustomTestStringConvertible {
        var name: String
        var volumeID = "cidata"
        var entries: [ISOImage.Entry]
        var modificationTime: Date? = Fixtures.time
        var code: ISOBuilderError.Code
        /// Text the message must contain.
        var mentions: String
        /// The path the error must name, if any.
        var path: String?

        var testDescription: String { name }

        var image: ISOImage {
            ISOImage(volumeID: volumeID, entries: entries, modificationTime: modificationTime)
        }
    }

    static let file = ISOImage.Entry.file("meta-data", text: "x")

    static let invalidCases: [InvalidCase] = [
        InvalidCase(name: "empty volume id", volumeID: "", entries: [file], code: .invalidVolumeID, mentions: "empty"),
        InvalidCase(
            name: "33-byte volume id",
            volumeID: String(repeating: "V", count: 33),
            entries: [file],
            code: .invalidVolumeID,
            mentions: "at most 32"
        ),
        InvalidCase(
            name: "non-ASCII volume id", volumeID: "clé", entries: [file], code: .invalidVolumeID,
            mentions: "printable ASCII"),
        InvalidCase(
            name: "volume id with a newline", volumeID: "a\nb", entries: [file], code: .invalidVolumeID,
            mentions: "printable ASCII"),
        InvalidCase(
            name: "volume id with a trailing space", volumeID: "cidata ", entries: [file], code: .invalidVolumeID,
            mentions: "space"),
        InvalidCase(
            name: "empty path", entries: [.file("", text: "x")], code: .invalidPath, mentions: "empty path", path: ""),
        InvalidCase(
            name: "absolute path", entries: [.file("/etc/passwd", text: "x")], code: .invalidPath, mentions: "absolute",
            path: "/etc/passwd"),
        InvalidCase(
            name: "parent component", entries: [.file("a/../../x", text: "x")], code: .invalidPath, mentions: "'..'",
            path: "a/../../x"),
        InvalidCase(
            name: "leading parent", entries: [.file("../x", text: "x")], code: .invalidPath, mentions: "'..'",
            path: "../x"),
        InvalidCase(
            name: "dot component", entries: [.file("./x", text: "x")], code: .invalidPath, mentions: "'.'", path: "./x"),
        InvalidCase(
            name: "empty component", entries: [.file("a//b", text: "x")], code: .invalidPath,
            mentions: "empty component",
            path: "a//b"),
        InvalidCase(
            name: "trailing slash", entries: [.directory("a/")], code: .invalidPath, mentions: "empty component",
            path: "a/"),
        InvalidCase(
            name: "NUL byte", entries: [.file("a\u{0}b", text: "x")], code: .invalidPath, mentions: "NUL",
            path: "a\u{0}b"),
        InvalidCase(
            name: "control character", entries: [.file("a\u{7}b", text: "x")], code: .invalidName, mentions: "Joliet",
            path: "a\u{7}b"),
        InvalidCase(
            name: "colon (mapped by Joliet)", entries: [.file("a:b", text: "x")], code: .invalidName,
            mentions: "Joliet",
            path: "a:b"),
        InvalidCase(
            name: "backslash", entries: [.file("dir\\file", text: "x")], code: .invalidName, mentions: "Joliet",
            path: "dir\\file"
        ),
        InvalidCase(
            name: "duplicate file",
            entries: [.file("a/b", text: "1"), .file("a/b", text: "2")],
            code: .duplicatePath,
            mentions: "more than once",
            path: "a/b"
        ),
        InvalidCase(
            name: "duplicate directory",
            entries: [.directory("a"), .directory("a", mode: 0o700)],
            code: .duplicatePath,
            mentions: "more than once",
            path: "a"
        ),
        InvalidCase(
            name: "file, then a file below it",
            entries: [.file("a", text: "1"), .file("a/b", text: "2")],
            code: .pathConflict,
            mentions: "'a' is a file",
            path: "a/b"
        ),
        InvalidCase(
            name: "file below, then the file itself",
            entries: [.file("a/b", text: "2"), .file("a", text: "1")],
            code: .pathConflict,
            mentions: "directory",
            path: "a"
        ),
        InvalidCase(
            name: "directory and file with one name",
            entries: [.directory("a"), .file("a", text: "1")],
            code: .pathConflict,
            mentions: "both as a file and as a directory",
            path: "a"
        ),
        InvalidCase(
            name: "256-byte name (Rock Ridge)",
            entries: [.file(String(repeating: "r", count: 256), text: "x")],
            code: .nameTooLong,
            mentions: "Rock Ridge allows at most 255"
        ),
        InvalidCase(
            name: "65-unit name (Joliet)",
            entries: [.file(String(repeating: "j", count: 65), text: "x")],
            code: .nameTooLong,
            mentions: "Joliet allows at most 64"
        ),
        InvalidCase(
            name: "33 two-unit characters (Joliet counts UTF-16)",
            entries: [.file(String(repeating: "😀", count: 33), text: "x")],
            code: .nameTooLong,
            mentions: "66 UTF-16 units"
        ),
        InvalidCase(
            name: "path too long for Joliet",
            entries: [.file((0..<4).map { _ in String(repeating: "p", count: 30) }.joined(separator: "/"), text: "x")],
            code: .pathTooLong,
            mentions: "245 bytes"
        ),
        InvalidCase(
            name: "mode with file type bits",
            entries: [.file("a", contents: [], mode: 0o100644)],
            code: .invalidMode,
            mentions: "0o7777",
            path: "a"
        ),
        InvalidCase(
            name: "time before 1970",
            entries: [file],
            modificationTime: Date(timeIntervalSince1970: -1),
            code: .invalidModificationTime,
            mentions: "1970"
        ),
        InvalidCase(
            name: "time after 2155",
            entries: [file],
            modificationTime: Date(timeIntervalSince1970: 5_869_584_000),
            code: .invalidModificationTime,
            mentions: "2155"
        ),
    ]

    @Test("invalid input gives a clear error", arguments: invalidCases)
    func invalidInput(_ invalid: InvalidCase) throws {
        let error = try #require(throws: ISOBuilderError.self) { try ISOBuilder().makeImage(invalid.image) }
        #expect(error.code == invalid.code, "\(error)")
        #expect(error.message.contains(invalid.mentions), "\(error)")
        if let path = invalid.path {
            #expect(error.path == path)
        }
        #expect(!error.isTransient)
        // validate(_:) finds the same problem without building.
        #expect(throws: error) { try ISOBuilder().validate(invalid.image) }
    }

    @Test("names and paths exactly at the limits are kept intact in both trees")
    func limitsAreExact() throws {
        // 64 UTF-16 units: the Joliet name limit. 32 emoji are 64 units and 128 bytes.
        let joliet64 = String(repeating: "j", count: 60) + ".txt"
        let emoji = String(repeating: "😀", count: 32)
        // Joliet path cost 1 + Σ(1 + 2·units) = 240 exactly.
        let a = String(repeating: "a", count: 58)
        let b = String(repeating: "b", count: 58)
        let c = String(repeating: "c", count: 2)
        let path240 = [a, b, c].joined(separator: "/")
        let jolietCost: Int = [a, b, c].reduce(1) { $0 + 1 + 2 * $1.utf16.count }
        #expect(jolietCost == 240)

        let image = ISOImage(
            volumeID: String(repeating: "V", count: 32),
            entries: [.file(joliet64, text: "1"), .file(emoji, text: "2"), .file(path240, text: "3")],
            modificationTime: Fixtures.time
        )
        let report = try ReaderReport.read(bytes: try ISOBuilder().makeImage(image))
        let expected = ExpectedTree(image)
        #expect(report.volumeID == image.volumeID)
        #expect(report.files == expected.reportFiles)
        #expect(report.jolietFiles == expected.reportFiles.mapValues(\.sha256))
    }

    @Test("inputs above the size limit are refused, naming the limit and the size")
    func inputSizeLimit() throws {
        let image = ISOImage(
            volumeID: "cidata",
            entries: [
                .file("a", contents: [UInt8](repeating: 1, count: 60_000)),
                .file("b", contents: [UInt8](repeating: 2, count: 60_000)),
            ],
            modificationTime: Fixtures.time
        )
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder(maxImageBytes: 100_000).makeImage(image)
        }
        #expect(error.code == .imageTooLarge)
        #expect(error.message.contains("limit of 100000 bytes"), "\(error)")
        #expect(error.message.contains("120000 bytes"), "\(error)")
    }

    @Test("an image above the size limit is refused, naming the limit and the image size")
    func imageSizeLimit() throws {
        let image = Fixtures.tenFiles()
        let size = try ISOBuilder().makeImage(image).count
        // The inputs (40 000 bytes) fit; the image, with its descriptors and directories, does not.
        let limit = size - 2048
        let error = try #require(throws: ISOBuilderError.self) { try ISOBuilder(maxImageBytes: limit).makeImage(image) }
        #expect(error.code == .imageTooLarge)
        #expect(error.message.contains("\(size) bytes"), "\(error)")
        #expect(error.message.contains("limit of \(limit) bytes"), "\(error)")
        #expect(try ISOBuilder(maxImageBytes: size).makeImage(image).count == size)

        // Nothing is written to a file either.
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        #expect(throws: ISOBuilderError.self) {
            try ISOBuilder(maxImageBytes: limit).writeImage(image, to: directory.path + "/vm1.iso", mode: 0o644)
        }
        #expect(try directory.contents().isEmpty)
    }

    @Test("an empty image and an image with only directories are valid")
    func emptyImages() throws {
        let empty = ISOImage(volumeID: "cidata", modificationTime: Fixtures.time)
        let report = try ReaderReport.read(bytes: try ISOBuilder().makeImage(empty))
        #expect(report.volumeID == "cidata")
        #expect(report.files.isEmpty)

        let directories = ISOImage(
            volumeID: "cidata",
            entries: [.directory("a/b/c", mode: 0o750), .directory("a", mode: 0o711)],
            modificationTime: Fixtures.time,
            rootDirectoryMode: 0o755
        )
        let tree = try ReaderReport.read(bytes: try ISOBuilder().makeImage(directories))
        #expect(
            tree.directories == ExpectedTree(directories).directories.mapValues { ReaderReport.Directory(mode: $0) })
        #expect(tree.jolietDirectories == ["/a", "/a/b", "/a/b/c"])
    }

    @Test("a deep tree (beyond ISO 9660's 8 levels) reads back through both names")
    func deepTree() throws {
        let deep = (1...12).map { "level\($0)" }.joined(separator: "/")
        let image = ISOImage(
            volumeID: "cidata",
            entries: [.file(deep + "/leaf.txt", text: "deep"), .file("top.txt", text: "top")],
            modificationTime: Fixtures.time
        )
        let report = try ReaderReport.read(bytes: try ISOBuilder().makeImage(image))
        let expected = ExpectedTree(image)
        #expect(report.files == expected.reportFiles)
        #expect(report.jolietFiles == expected.reportFiles.mapValues(\.sha256))
    }

    @Test("errors describe themselves with code, message and path")
    func errorDescription() {
        let error = ISOBuilderError(code: .invalidPath, message: "the path is bad", path: "x/y")
        #expect(error.description == "invalidPath: the path is bad (path: x/y)")
        let named = ISOBuilderError(code: .invalidPath, message: "the path 'x/y' is bad", path: "x/y")
        #expect(named.description == "invalidPath: the path 'x/y' is bad")
    }
}
