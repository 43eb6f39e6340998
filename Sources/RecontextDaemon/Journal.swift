internal import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Journal

/// The systemd journal, reached through libsystemd's native protocol.
///
/// libsystemd sends each entry as one datagram to `/run/systemd/journal/socket`; it needs no
/// running systemd as PID 1, only journald.
public enum Journal {
    /// Where journald listens for native entries.
    public static let socketPath = "/run/systemd/journal/socket"

    /// Whether journald's socket exists (libsystemd drops entries silently when it does not).
    public static var isAvailable: Bool {
        var info = stat()
        return stat(socketPath, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
    }

    /// Sends one entry.
    ///
    /// The corresponding C function is `sd_journal_sendv`.
    /// - Parameter entry: the fields; names must be valid journal field names.
    /// - Returns: `0` when the entry was sent, or when no journald listens (libsystemd then drops
    ///   it silently: see ``isAvailable``); a negative `errno` otherwise.
    @discardableResult
    public static func send(_ entry: JournalEntry) -> Int32 {
        // One buffer holds every `NAME=value`; the iovecs point into it while the call runs.
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(entry.fields.count)
        for field in entry.fields {
            let start = bytes.count
            bytes.append(contentsOf: field.name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: field.value.utf8)
            ranges.append(start..<bytes.count)
        }
        guard !ranges.isEmpty else { return -EINVAL }
        return bytes.withUnsafeMutableBytes { raw -> Int32 in
            let base = raw.baseAddress!
            let vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
