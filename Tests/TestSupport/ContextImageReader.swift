import Foundation

/// Reads a context image back with pycdlib (`Tests/Harness/read_context.py`), a reader we did
/// not write, and decodes what it prints.
public struct ContextImageReader {
    /// One file of the image.
    public struct File: Decodable, Sendable, Hashable {
        /// Octal mode from Rock Ridge, e.g. "0644".
        public var mode: String
        public var size: Int
        public var sha256: String
        public var base64: String
        /// The content, when it is UTF-8.
        public var text: String?
    }

    /// The image as read.
    public struct Image: Decodable, Sendable {
        public var volumeID: String
        public var files: [String: File]

        enum CodingKeys: String, CodingKey {
            case volumeID = "volume_id"
            case files
        }

        /// The text of a file, or an empty string.
        public func text(_ path: String) -> String { files[path]?.text ?? "" }

        /// The generation record recontextd adds to every image.
        public var generation: [String: Any] {
            guard let data = files["recontext/generation.json"]?.text?.data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return [:] }
            return object
        }
    }

    /// The reader script.
    public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Harness/read_context.py").path

    /// Reads `path`.
    public static func read(_ path: String) throws -> Image {
        let output = try ProcessRunner.run("/usr/bin/python3", [script, path])
        return try JSONDecoder().decode(Image.self, from: Data(output.utf8))
    }
}

/// Runs a program to completion and returns its standard output.
public enum ProcessRunner {
    /// A program that exited non-zero.
    public struct Failure: Error, CustomStringConvertible {
        public var command: String
        public var status: Int32
        public var standardError: String
        public var standardOutput: String
        public var description: String { "\(command) exited \(status): \(standardError)\(standardOutput)" }

        /// Creates a failure description.
        public init(command: String, status: Int32, standardError: String, standardOutput: String) {
            self.command = command
            self.status = status
            self.standardError = standardError
            self.standardOutput = standardOutput
        }
    }

    /// Runs `executable` with `arguments`; throws ``Failure`` on a non-zero exit.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
        -> String
    {
        let result = try runAllowingFailure(executable, arguments, environment: environment)
        guard result.status == 0 else {
            throw Failure(
                command: ([executable] + arguments).joined(separator: " "), status: result.status,
                standardError: result.standardError, standardOutput: result.standardOutput)
        }
        return result.standardOutput
    }

    /// Runs `executable` and returns its exit status and both outputs.
    public static func runAllowingFailure(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    ) throws -> (status: Int32, standardOutput: String, standardError: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes to the end before waiting, so a chatty program cannot block on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var errorData = Data()
        group.enter()
        DispatchQueue.global().async {
            errorData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: outputData, as: UTF8.self),
            String(decoding: errorData, as: UTF8.self)
        )
    }
}
