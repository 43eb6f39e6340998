import FoundationEssentials
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Logs to standard error in the form that suits who reads it.
///
/// - Under systemd (`JOURNAL_STREAM` names our stderr): one line per entry with an sd-daemon
///   priority prefix (`<5>context applied …`), which journald turns into the entry's PRIORITY.
/// - On a terminal or in a file: `2026-11-26T10:00:00.123Z notice context applied key=value …`.
///
/// Metadata is printed as sorted `key=value` pairs; values containing spaces are quoted.
public struct StandardErrorLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journalPrefixes: Bool

    /// Creates a handler.
    /// - Parameters:
    ///   - label: the logger's label.
    ///   - level: the lowest level logged.
    ///   - journalPrefixes: use sd-daemon `<N>` prefixes; defaults to whether stderr is the
    ///     journal stream systemd set up.
    public init(
        label: String, level: Logger.Level = .info, journalPrefixes: Bool = StandardErrorLogHandler.stderrIsJournal()
    ) {
        self.label = label
        self.logLevel = level
        self.journalPrefixes = journalPrefixes
    }

    /// Whether `JOURNAL_STREAM` (device:inode) matches standard error.
    public static func stderrIsJournal() -> Bool {
        guard let value = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The syslog priority of a level (journald's PRIORITY).
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = ""
        if journalPrefixes {
            line = "<\(Self.syslogPriority(event.level))>\(event.message)"
        } else {
            line = "\(Self.timestamp()) \(event.level) \(event.message)"
        }
        for key in merged.keys.sorted() {
            line += " \(key)=\(Self.quoted("\(merged[key]!)"))"
        }
        line += "\n"
        line.withCString { pointer in _ = Glibc.write(2, pointer, strlen(pointer)) }
    }

    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else {
            return value
        }
        let escaped = value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            .replacing("\n", with: "\\n")
        return "\"\(escaped)\""
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var tm = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &tm)
        var text = [CChar](repeating: 0, count: 32)
        let length = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%S", &tm)
        let milliseconds = String(now.tv_nsec / 1_000_000)
        return String(decoding: text.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) + "."
            + String(repeating: "0", count: 3 - milliseconds.count) + milliseconds + "Z"
    }
}
