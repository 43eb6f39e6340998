#if canImport(Glibc)
    import Glibc
#endif

// MARK: - MetricsTextFile

/// Writes the Prometheus text exposition for node_exporter's textfile collector, atomically.
///
/// node_exporter may read the directory at any moment, so the file only ever appears whole:
/// the text goes to a hidden temporary file in the same directory (node_exporter reads only
/// `*.prom`), which is fsynced and renamed over the destination.
public struct MetricsTextFile: Sendable {
    /// The destination, e.g. `/var/lib/prometheus/node-exporter/recontextd.prom`.
    public let path: String
    /// File mode of the written file. Default `0644` (node_exporter often runs as its own user).
    public let mode: mode_t

    /// Why a write failed.
    public struct WriteError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The step that failed, e.g. `open`, `write`, `rename`.
        public var step: String
        /// The file concerned.
        public var path: String
        /// `errno` after the failing call.
        public var errno: Int32

        public var description: String {
            "\(step) \(path): \(String(cString: strerror(errno)))"
        }
    }

    /// Creates a writer for `path`.
    public init(path: String, mode: mode_t = 0o644) {
        self.path = path
        self.mode = mode
    }

    /// The temporary file used while writing: `.<name>.<pid>.tmp` beside the destination.
    public var temporaryPath: String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return "\(directory).\(name).\(getpid()).tmp"
    }

    /// Writes `text` atomically: temporary file, `write`, `fchmod`, `fsync`, `rename`.
    /// - Throws: ``WriteError`` naming the step; the temporary file is removed then.
    public func write(_ text: String) throws(WriteError) {
        let temporary = temporaryPath
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw WriteError(step: "open", path: temporary, errno: errno) }
        var failure: WriteError?
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = WriteError(step: "write", path: temporary, errno: errno)
                    return
                }
                offset += written
            }
        }
        if failure == nil, fchmod(descriptor, mode) != 0 {
            failure = WriteError(step: "fchmod", path: temporary, errno: errno)
        }
        if failure == nil, fsync(descriptor) != 0 { failure = WriteError(step: "fsync", path: temporary, errno: errno) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 {
            failure = WriteError(step: "rename", path: path, errno: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }
}
