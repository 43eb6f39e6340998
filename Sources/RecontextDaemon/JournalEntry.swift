import Logging

// MARK: - JournalEntry

/// One native journal entry: `NAME=value` fields in order, as `sd_journal_sendv` takes them.
///
/// ``init(level:message:metadata:identifier:file:function:line:)`` builds the entry a log call
/// makes: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/CODE_LINE/CODE_FUNC, then one field per
/// metadata key (see ``JournalEntry/fieldName(forMetadataKey:)``), so that
/// `journalctl -u recontextd DOMAIN_UUID=…` finds one VM's history.
public struct JournalEntry: Sendable, Hashable {
    /// One `NAME=value` field.
    public struct Field: Sendable, Hashable {
        /// Upper case `[A-Z0-9_]`, not starting with `_` or a digit, at most 64 bytes.
        public var name: String
        /// Any text (newlines included).
        public var value: String
        /// Creates a field.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields, in order; a name may appear more than once (journald keeps every value).
    public var fields: [Field]

    /// Creates an entry from fields.
    public init(fields: [Field]) {
        self.fields = fields
    }

    /// The first value of `name`, if any.
    public subscript(name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// The entry for one log call.
    ///
    /// MESSAGE is the message followed by the metadata as sorted `key=value` pairs (what
    /// `journalctl` shows by default); every metadata key is also a field of its own.
    /// - Parameters:
    ///   - level: the log level, which becomes PRIORITY (syslog: 7 debug … 2 critical).
    ///   - message: the message.
    ///   - metadata: the logger's and the call's metadata merged.
    ///   - identifier: SYSLOG_IDENTIFIER.
    ///   - file: the caller's file (`#fileID`), CODE_FILE.
    ///   - function: the caller's function, CODE_FUNC.
    ///   - line: the caller's line, CODE_LINE.
    public init(
        level: Logger.Level, message: String, metadata: Logger.Metadata, identifier: String, file: String,
        function: String, line: UInt
    ) {
        var text = message
        let keys = metadata.keys.sorted()
        for key in keys { text += " \(key)=\(StandardErrorLogHandler.quoted("\(metadata[key]!)"))" }
        var fields = [
            Field("MESSAGE", text),
            Field("PRIORITY", "\(StandardErrorLogHandler.syslogPriority(level))"),
            Field("SYSLOG_IDENTIFIER", identifier),
            Field("CODE_FILE", file),
            Field("CODE_LINE", "\(line)"),
            Field("CODE_FUNC", function),
        ]
        for key in keys {
            let value = "\(metadata[key]!)"
            fields.append(Field(Self.fieldName(forMetadataKey: key), Self.fieldValue(forMetadataKey: key, value)))
        }
        self.fields = fields
    }

    // MARK: - Field names

    /// Metadata keys of the pipeline and the daemon whose field names are part of the interface
    /// (README, `journalctl` filters).
    static let knownFields: [String: String] = [
        "domain.name": "DOMAIN_NAME",
        "domain.uuid": "DOMAIN_UUID",
        "run.id": "RUN_ID",
        "run.trigger": "TRIGGER",
        "generation": "GENERATION",
        "result": "RESULT",
        "phase": "PHASE",
        "error": "ERROR",
        "hypervisor.error_code": "LIBVIRT_ERROR_CODE",
        "duration.total_ms": "DURATION_USEC",
    ]

    /// Fields journald or `journalctl` give a meaning of their own; a metadata key that maps to
    /// one gets the prefix `RECONTEXTD_` instead.
    static let reservedFields: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO", "INVOCATION_ID",
        "USER_INVOCATION_ID", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
        "DOCUMENTATION", "TID", "UNIT", "USER_UNIT", "OBJECT_PID", "OBJECT_UID", "OBJECT_GID", "OBJECT_COMM",
        "OBJECT_EXE", "OBJECT_CMDLINE", "OBJECT_SYSTEMD_UNIT", "OBJECT_SYSTEMD_USER_UNIT",
    ]

    /// The journal field for a metadata key.
    ///
    /// - The keys above by name (`domain.uuid` → `DOMAIN_UUID`, `run.trigger` → `TRIGGER`,
    ///   `duration.total_ms` → `DURATION_USEC`).
    /// - `duration.<phase>_ms` → `DURATION_<PHASE>_USEC` (e.g. `DURATION_INSERT_USEC`).
    /// - Anything else: upper case, every character outside `[A-Z0-9_]` becomes `_`
    ///   (`libvirt.uri` → `LIBVIRT_URI`); a name journald reserves or one starting with `_` or a
    ///   digit gets the prefix `RECONTEXTD_`; at most 64 bytes.
    public static func fieldName(forMetadataKey key: String) -> String {
        if let known = knownFields[key] { return known }
        if let phase = phaseDuration(key) { return "DURATION_\(sanitized(phase))_USEC" }
        var name = sanitized(key)
        if name.isEmpty || name.hasPrefix("_") || name.first!.isNumber || reservedFields.contains(name) {
            name = "RECONTEXTD_" + name
        }
        return String(name.prefix(64))
    }

    /// The value of a field: durations in milliseconds (`"12.34"`) become whole microseconds.
    static func fieldValue(forMetadataKey key: String, _ value: String) -> String {
        guard key == "duration.total_ms" || phaseDuration(key) != nil, let milliseconds = Double(value),
            milliseconds.isFinite, milliseconds >= 0
        else { return value }
        return "\(Int64((milliseconds * 1000).rounded()))"
    }

    /// `build` for `duration.build_ms`; `nil` for other keys (and `duration.total_ms`).
    static func phaseDuration(_ key: String) -> String? {
        guard key.hasPrefix("duration."), key.hasSuffix("_ms"), key != "duration.total_ms" else { return nil }
        let phase = key.dropFirst("duration.".count).dropLast("_ms".count)
        return phase.isEmpty ? nil : String(phase)
    }

    /// Upper case; every byte outside `[A-Z0-9_]` becomes `_`.
    static func sanitized(_ text: some StringProtocol) -> String {
        String(
            decoding: text.utf8.map { byte -> UInt8 in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - 32
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                    byte
                default: UInt8(ascii: "_")
                }
            }, as: UTF8.self)
    }
}
