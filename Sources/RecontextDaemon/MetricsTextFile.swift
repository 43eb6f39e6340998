import AtomicFile

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - MetricsTextFile

/// Writes the Prometheus text exposition for node_exporter's textfile collector, atomically.
///
/// node_exporter may read the directory at any moment, so the file only ever appears whole: it is
/// written with ``AtomicFile`` to a hidden temporary file in the same directory (node_exporter
/// reads only `*.prom`, and ``AtomicFile/temporaryName(for:)`` never ends in `.prom`), which is
/// fsynced and renamed over the destination.
public struct MetricsTextFile: Sendable {
    /// The destination, e.g. `/var/lib/prometheus/node-exporter/recontextd.prom`.
    public let path: String
    /// File mode of the written file. Default `0644` (node_exporter often runs as its own user).
    public let mode: mode_t

    /// Creates a writer for `path`.
    public init(path: String, mode: mode_t = 0o644) {
        self.path = path
        self.mode = mode
    }

    /// Writes `text` atomically (``AtomicFile/write(_:to:mode:group:durable:label:)``).
    /// - Throws: ``AtomicFileError`` naming the step; the temporary file is removed then.
    public func write(_ text: String) throws(AtomicFileError) {
        try AtomicFile.write(Array(text.utf8), to: path, mode: mode, label: "metrics textfile")
    }
}
