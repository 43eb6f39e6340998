import Digest
import Foundation
import ISOBuilder
import Testing

// MARK: - External tools

/// Finds and runs the independent ISO readers (isoinfo, xorriso, pycdlib via iso_read.py).
enum ExternalTools {
    /// The directories searched for tools, in order.
    private static let searchPath: [String] = {
        let fromEnvironment = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] + fromEnvironment
    }()

    /// The absolute path of a tool, or a test failure naming the package to install.
    static func require(_ tool: String, package: String, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> String
    {
        let found = searchPath.lazy.map { $0 + "/" + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
        return try #require(
            found,
            "\(tool) is not installed (looked in \(searchPath.joined(separator: ":"))); install the Debian package \(package)",
            sourceLocation: sourceLocation
        )
    }

    /// `/usr/bin/python3` with pycdlib importable, and the reader script next to the tests.
    static func requirePycdlibReader(sourceLocation: SourceLocation = #_sourceLocation) throws -> (
        python: String, script: String
    ) {
        let python = "/usr/bin/python3"
        try #require(
            FileManager.default.isExecutableFile(atPath: python),
            "\(python) is missing; install the Debian packages python3 and python3-pycdlib",
            sourceLocation: sourceLocation
        )
        let probe = try run(python, ["-c", "import pycdlib"])
        try #require(
            probe.status == 0,
            "pycdlib is not importable by \(python): \(probe.standardError); install the Debian package python3-pycdlib",
            sourceLocation: sourceLocation
        )
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Harness/iso_read.py").path
        try #require(
            FileManager.default.fileExists(atPath: script), "the reader script \(script) is missing",
            sourceLocation: sourceLocation)
        return (python, script)
    }

    /// The result of a finished process.
    struct Result {
        /// Exit status.
        var status: Int32
        /// Everything written to standard output.
        var standardOutput: Data
        /// Everything written to standard error, as text.
        var standardError: String
        /// Standard output as UTF-8 text.
        var text: String { String(decoding: standardOutput, as: UTF8.self) }
    }

    /// Runs a program to completion (no shell) and collects its output.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> Result
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "isobuilder-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errorHandle = try FileHandle(forWritingTo: errorFile)
        process.standardOutput = output
        process.standardError = errorHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try errorHandle.close()
        let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, standardOutput: data, standardError: errors)
    }

    /// Runs a program and returns its output, recording a failure (with its stderr) if it exits non-zero.
    static func output(
        _ executable: String,
        _ arguments: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Result {
        let result = try run(executable, arguments)
        try #require(
            result.status == 0,
            "\(executable) \(arguments.joined(separator: " ")) exited with \(result.status): \(result.standardError)",
            sourceLocation: sourceLocation
        )
        return result
    }
}

// MARK: - pycdlib report

/// What `Tests/Harness/iso_read.py` prints for an image.
struct ReaderReport: Decodable {
    /// A file read through its Rock Ridge name.
    struct File: Decodable, Equatable {
        var sha256: String
        var size: Int
        var mode: UInt32
    }

    /// A directory read through its Rock Ridge name.
    struct Directory: Decodable, Equatable {
        var mode: UInt32
    }

    var volumeID: String
    var jolietVolumeID: String?
    var rockRidge: Bool
    var joliet: Bool
    var files: [String: File]
    var directories: [String: Directory]
    var jolietFiles: [String: String]
    var jolietDirectories: [String]

    enum CodingKeys: String, CodingKey {
        case volumeID = "volume_id"
        case jolietVolumeID = "joliet_volume_id"
        case rockRidge = "rock_ridge"
        case joliet
        case files
        case directories
        case jolietFiles = "joliet_files"
        case jolietDirectories = "joliet_directories"
    }

    /// Reads an image file with pycdlib.
    static func read(_ imagePath: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ReaderReport {
        let reader = try ExternalTools.requirePycdlibReader(sourceLocation: sourceLocation)
        let result = try ExternalTools.output(
            reader.python, [reader.script, imagePath], sourceLocation: sourceLocation)
        return try JSONDecoder().decode(ReaderReport.self, from: result.standardOutput)
    }

    /// Reads image bytes with pycdlib (through a temporary file).
    static func read(bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> ReaderReport {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/image.iso"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try read(path, sourceLocation: sourceLocation)
    }
}

// MARK: - Expected contents

/// What an image should contain, derived from an ``ISOImage`` independently of libisofs.
struct ExpectedTree {
    /// "/path" → contents and full st_mode.
    var files: [String: (contents: [UInt8], mode: UInt32)] = [:]
    /// "/path" → full st_mode, root ("/") included.
    var directories: [String: UInt32] = [:]

    /// Derives the expected tree: explicit entries with their modes, implied directories with 0o555.
    init(_ image: ISOImage) {
        directories["/"] = 0o040000 | UInt32(image.rootDirectoryMode)
        for entry in image.entries {
            let components = entry.path.split(separator: "/")
            var prefix = ""
            for component in components.dropLast() {
                prefix += "/" + component
                if directories[prefix] == nil { directories[prefix] = 0o040555 }
            }
            switch entry.kind {
            case .file(let contents):
                files["/" + entry.path] = (contents, 0o100000 | UInt32(entry.mode))
            case .directory:
                directories["/" + entry.path] = 0o040000 | UInt32(entry.mode)
            }
        }
    }

    /// The expected report fields for comparison with a ``ReaderReport``.
    var reportFiles: [String: ReaderReport.File] {
        files.mapValues { ReaderReport.File(sha256: SHA256.hex($0.contents), size: $0.contents.count, mode: $0.mode) }
    }

    /// Directories other than the root.
    var subdirectories: [String] {
        directories.keys.filter { $0 != "/" }.sorted()
    }
}

// MARK: - Fixtures

/// Images used across the tests.
enum Fixtures {
    /// A fixed time: 2023-11-14T22:13:20Z.
    static let time = Date(timeIntervalSince1970: 1_700_000_000)

    /// A context image with the shapes that matter: nested implied directories, explicit directory
    /// modes, an empty directory, an empty file, binary content, varied modes, a non-ASCII name,
    /// names without extension, and names at the Joliet length limit.
    static func contextImage(volumeID: String) -> ISOImage {
        let longName = String(repeating: "n", count: 59) + ".json" // exactly 64 UTF-16 units
        return ISOImage(
            volumeID: volumeID,
            entries: [
                .file("openstack/latest/meta_data.json", text: #"{"uuid": "0b3f", "name": "vm1"}"#, mode: 0o444),
                .file("openstack/latest/user_data", text: "#cloud-config\npassword: secret\n", mode: 0o400),
                .file("openstack/latest/network_data.json", contents: Array(repeating: UInt8(ascii: "x"), count: 5000)),
                .directory("openstack/content", mode: 0o750),
                .file(
                    "openstack/content/0000", contents: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) },
                    mode: 0o640),
                .file("meta-data", text: "instance-id: iid-vm1\nlocal-hostname: vm1\n"),
                .file("user-data", text: "#cloud-config\n", mode: 0o644),
                .file("context.sh", text: "ETH0_IP='10.0.0.5'\n", mode: 0o755),
                .file("empty", contents: []),
                .directory("var/empty-dir", mode: 0o700),
                .file("données/été.txt", text: "non-ASCII names survive\n"),
                .file(longName, text: "long name\n"),
                .file(".hidden", text: "dot file\n", mode: 0o600),
            ],
            modificationTime: time
        )
    }

    /// Ten files of about 4 KB each (about 40 KB), like a typical context image.
    static func tenFiles(volumeID: String = "CONTEXT", seed: Int = 0) -> ISOImage {
        var image = ISOImage(volumeID: volumeID, modificationTime: time)
        for index in 0..<10 {
            let contents = (0..<4000).map { UInt8(truncatingIfNeeded: ($0 &+ index &* 7 &+ seed) &* 13) }
            image.addFile(at: index < 5 ? "openstack/latest/file\(index).json" : "file\(index).txt", contents: contents)
        }
        return image
    }
}

// MARK: - Temporary directory

/// A fresh directory under the system temporary directory, removed when released.
final class TemporaryDirectory {
    /// Its absolute path.
    let path: String

    /// Creates the directory.
    init() throws {
        var template = Array((FileManager.default.temporaryDirectory.path + "/isobuilder-tests-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else { throw CocoaError(.fileWriteUnknown) }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The names in the directory, sorted.
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}
