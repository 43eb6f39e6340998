import Foundation

// MARK: - Harness protocol

/// The harness's ready line: `{"ready": true, "uri": …}` or `{"ready": false, "error": …}`.
struct ReadyLine: Decodable {
    var ready: Bool
    var error: String?
    var logTail: String?
    var uri: String?
    var pid: Int32?
    var libvirtdPid: Int32?
    var virtlogdPid: Int32?
    var hostname: String?
    var address: String?
    var hostUuid: String?
    var migrationPorts: [Int]?
    var pidNamespace: Bool?
    var startupSeconds: Double?
}

/// The answer to one harness command: `{"ok": true, …}`.
struct Reply: Decodable {
    var ok: Bool
    var error: String?
    var logTail: String?
    var libvirtdPid: Int32?
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// Reads `\n`-terminated lines from a pipe, blocking. Used only under `LibvirtTestHost.lock` (or
/// before the host object exists).
final class LineReader {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    /// The next line without its newline, or `nil` at end of file.
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer.removeSubrange(buffer.startIndex...newline)
                return String(decoding: line, as: UTF8.self)
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    func close() {
        try? handle.close()
    }
}
