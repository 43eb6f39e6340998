import Logging
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - JournalLogHandler

/// Logs native journal entries with fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE,
/// CODE_LINE, CODE_FUNC and one field per metadata key (``JournalEntry``).
///
/// The pipeline's metadata becomes DOMAIN_NAME, DOMAIN_UUID, RUN_ID, TRIGGER, GENERATION, RESULT,
/// PHASE, ERROR, LIBVIRT_ERROR_CODE, DURATION_USEC and DURATION_<PHASE>_USEC, so that
/// `journalctl -u recontextd DOMAIN_UUID=…` lists one VM's runs.
///
/// When journald does not take an entry (it is not running, or its socket is gone), the entry is
/// written to standard error with an sd-daemon priority prefix instead, so nothing is lost
/// silently.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let identifier: String
    private let sink: @Sendable (JournalEntry) -> Int32

    /// Creates a handler.
    /// - Parameters:
    ///   - label: the logger's label (unused in the entry: SYSLOG_IDENTIFIER names the program).
    ///   - level: the lowest level logged.
    ///   - identifier: SYSLOG_IDENTIFIER. Default `recontextd`.
    ///   - sink: sends an entry and returns 0 or a negative errno; by default ``Journal/send(_:)``.
    public init(
        label: String, level: Logger.Level = .info, identifier: String = "recontextd",
        sink: @escaping @Sendable (JournalEntry) -> Int32 = { Journal.send($0) }
    ) {
        self.logLevel = level
        self.identifier = identifier
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let entry = JournalEntry(
            level: event.level, message: "\(event.message)", metadata: merged, identifier: identifier, file: event.file,
            function: event.function, line: event.line)
        if sink(entry) < 0 {
            let line = "<\(StandardErrorLogHandler.syslogPriority(event.level))>\(entry["MESSAGE"] ?? "")\n"
            line.withCString { pointer in _ = Glibc.write(2, pointer, strlen(pointer)) }
        }
    }
}
