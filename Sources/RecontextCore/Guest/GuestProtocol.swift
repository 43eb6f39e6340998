/// Protocol 1 of the host-guest channel (README, "Host-guest channel"): the lines a guest may
/// send, parsed and validated, and the one line the host sends.
///
/// Everything here treats the guest's bytes as hostile: a line is refused unless every byte is
/// printable ASCII, the version and verb are known and every field has the documented shape.
/// A refusal carries a ``GuestLineError/Reason``, never the guest's bytes.
public enum GuestProtocol {
    /// The virtio-serial port name (`<target type='virtio' name=...>`).
    public static let portName = "org.recontextd.channel.0"
    /// The version token every line starts with.
    public static let version = "recontext/1"
    /// The longest line, newline included.
    public static let maxLineBytes = 512
    /// The most hook outcomes one ack may list.
    public static let maxHooks = 32

    /// The host's line: generation `generation` with content hash `hash` is in the drive.
    public static func generationLine(_ generation: UInt64, hash: String) -> String {
        "\(version) generation \(generation) hash=\(hash)\n"
    }

    /// Parses one line (without its newline; a trailing `\r` is ignored).
    public static func parse(_ line: some Collection<UInt8>) -> Result<GuestMessage, GuestLineError> {
        var bytes = Array(line)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard bytes.count < maxLineBytes else { return .failure(.init(.oversized)) }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .failure(.init(.notPrintableASCII)) }
        let tokens = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard tokens.count >= 2, !tokens.contains(where: \.isEmpty) else { return .failure(.init(.malformed)) }
        guard tokens[0] == version else { return .failure(.init(.unknownVersion)) }
        switch tokens[1] {
        case "hello": return parseHello(Array(tokens.dropFirst(2)))
        case "applied": return parseApplied(Array(tokens.dropFirst(2)))
        default: return .failure(.init(.unknownVerb))
        }
    }

    static func parseHello(_ tokens: [String]) -> Result<GuestMessage, GuestLineError> {
        let fields: [String: String]
        switch GuestFields.parse(tokens) {
        case .success(let parsed): fields = parsed
        case .failure(let error): return .failure(error)
        }
        guard let version = fields["version"], GuestFields.isVersion(version) else {
            return .failure(.init(.badField, field: "version"))
        }
        guard let appliedText = fields["applied"], let applied = GuestFields.generation(appliedText) else {
            return .failure(.init(.badField, field: "applied"))
        }
        guard let hashText = fields["hash"], hashText == "-" || GuestFields.isHash(hashText) else {
            return .failure(.init(.badField, field: "hash"))
        }
        return .success(
            .hello(GuestHello(version: version, applied: applied, contentHash: hashText == "-" ? nil : hashText)))
    }

    static func parseApplied(_ tokens: [String]) -> Result<GuestMessage, GuestLineError> {
        guard let first = tokens.first, let generation = GuestFields.generation(first), generation > 0 else {
            return .failure(.init(.badField, field: "generation"))
        }
        let fields: [String: String]
        switch GuestFields.parse(Array(tokens.dropFirst())) {
        case .success(let parsed): fields = parsed
        case .failure(let error): return .failure(error)
        }
        guard let resultText = fields["result"], let result = GuestAck.Result(rawValue: resultText) else {
            return .failure(.init(.badField, field: "result"))
        }
        guard let hash = fields["hash"], GuestFields.isHash(hash) else {
            return .failure(.init(.badField, field: "hash"))
        }
        guard let host = fields["host"], GuestFields.isName(host, maxBytes: 64) else {
            return .failure(.init(.badField, field: "host"))
        }
        guard let trigger = fields["trigger"], GuestFields.isName(trigger, maxBytes: 32) else {
            return .failure(.init(.badField, field: "trigger"))
        }
        guard let hooksText = fields["hooks"], let hooks = GuestFields.hooks(hooksText) else {
            return .failure(.init(.badField, field: "hooks"))
        }
        var milliseconds: UInt32?
        if let text = fields["ms"] {
            guard text.utf8.count <= 9, let value = UInt32(text) else { return .failure(.init(.badField, field: "ms")) }
            milliseconds = value
        }
        return .success(
            .applied(
                GuestAck(
                    generation: generation, result: result, contentHash: hash, host: host, trigger: trigger,
                    hooks: hooks, milliseconds: milliseconds)))
    }
}

/// A validated line from the guest.
public enum GuestMessage: Sendable, Hashable {
    /// The companion's listener started, or the port came back.
    case hello(GuestHello)
    /// The guest applied (or failed to apply) a generation.
    case applied(GuestAck)
}

/// `recontext/1 hello version=V applied=N hash=H`.
public struct GuestHello: Sendable, Hashable {
    /// The companion's version.
    public var version: String
    /// The generation it applied last (0: none).
    public var applied: UInt64
    /// Its content hash (`nil`: none).
    public var contentHash: String?

    /// Creates a hello.
    public init(version: String, applied: UInt64, contentHash: String?) {
        self.version = version
        self.applied = applied
        self.contentHash = contentHash
    }
}

/// `recontext/1 applied N result=R hash=H host=X trigger=T hooks=L [ms=D]`.
public struct GuestAck: Sendable, Hashable {
    /// What the guest made of the generation.
    public enum Result: String, Sendable, Hashable {
        /// Applied; every hook succeeded.
        case ok
        /// Applied (the content is in place); a hook failed.
        case hooksFailed = "hooks-failed"
        /// Nothing applied (e.g. the disc could not be read).
        case failed
    }

    /// One hook's outcome.
    public struct Hook: Sendable, Hashable, CustomStringConvertible {
        /// How it ended.
        public enum Outcome: Sendable, Hashable {
            case ok, timeout
            case failed(exitCode: UInt8)
        }
        /// The hook's file name.
        public var name: String
        /// How it ended.
        public var outcome: Outcome

        public init(name: String, outcome: Outcome) {
            self.name = name
            self.outcome = outcome
        }

        public var description: String {
            switch outcome {
            case .ok: "\(name):ok"
            case .timeout: "\(name):timeout"
            case .failed(let code): "\(name):failed:\(code)"
            }
        }
    }

    /// The generation.
    public var generation: UInt64
    /// The result.
    public var result: Result
    /// The content hash the guest read from the disc.
    public var contentHash: String
    /// The host named in the disc's generation record.
    public var host: String
    /// What made the guest apply (`notify`, `media-change`, ...).
    public var trigger: String
    /// The hooks' outcomes, in order.
    public var hooks: [Hook]
    /// The guest's own apply time, if it said.
    public var milliseconds: UInt32?

    /// Creates an ack.
    public init(
        generation: UInt64, result: Result, contentHash: String, host: String, trigger: String, hooks: [Hook],
        milliseconds: UInt32? = nil
    ) {
        self.generation = generation
        self.result = result
        self.contentHash = contentHash
        self.host = host
        self.trigger = trigger
        self.hooks = hooks
        self.milliseconds = milliseconds
    }

    /// The hooks that did not succeed.
    public var failedHooks: [Hook] { hooks.filter { $0.outcome != .ok } }
}

/// Why a guest line was dropped. Names the rule, never repeats the guest's bytes.
public struct GuestLineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The rule a line broke.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        /// Longer than ``GuestProtocol/maxLineBytes``.
        case oversized
        /// A byte outside printable ASCII (control characters, invalid or any UTF-8).
        case notPrintableASCII = "not-printable-ascii"
        /// Empty tokens, too few tokens, a field without `=`, a repeated key.
        case malformed
        /// Not `recontext/1`.
        case unknownVersion = "unknown-version"
        /// Not `hello` or `applied`.
        case unknownVerb = "unknown-verb"
        /// A field missing or of the wrong shape (``field`` names it).
        case badField = "bad-field"
        /// Over the rate (``GuestChannelGuard``).
        case rateLimited = "rate-limited"
    }
    /// The rule.
    public var reason: Reason
    /// The field, for ``Reason/badField``.
    public var field: String?

    /// Creates an error.
    public init(_ reason: Reason, field: String? = nil) {
        self.reason = reason
        self.field = field
    }

    public var description: String {
        field.map { "\(reason.rawValue) (\($0))" } ?? reason.rawValue
    }
}

/// Field shapes of protocol 1.
enum GuestFields {
    static let keyBytes = Set("abcdefghijklmnopqrstuvwxyz-".utf8)
    static let nameBytes = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8)
    static let versionBytes = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+~-".utf8)
    static let hexBytes = Set("0123456789abcdef".utf8)

    /// `key=value` tokens; unknown keys are kept (and ignored by the caller); a key twice is malformed.
    static func parse(_ tokens: [String]) -> Result<[String: String], GuestLineError> {
        var fields: [String: String] = [:]
        for token in tokens {
            guard let equals = token.utf8.firstIndex(of: UInt8(ascii: "=")) else {
                return .failure(.init(.malformed))
            }
            let key = String(token[..<equals])
            let value = String(token[token.index(after: equals)...])
            guard !key.isEmpty, key.utf8.count <= 32, key.utf8.allSatisfy(keyBytes.contains), !value.isEmpty,
                fields[key] == nil
            else { return .failure(.init(.malformed)) }
            fields[key] = value
        }
        return .success(fields)
    }

    /// A decimal generation: 1 to 20 digits, no sign, fits in 64 bits.
    static func generation(_ text: String) -> UInt64? {
        guard (1...20).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return UInt64(text)
    }

    static func isHash(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy(hexBytes.contains)
    }

    static func isName(_ text: String, maxBytes: Int) -> Bool {
        (1...maxBytes).contains(text.utf8.count) && text.utf8.allSatisfy(nameBytes.contains)
    }

    static func isVersion(_ text: String) -> Bool {
        (1...32).contains(text.utf8.count) && text.utf8.allSatisfy(versionBytes.contains)
    }

    /// `-` or up to ``GuestProtocol/maxHooks`` of `name:ok`, `name:timeout`, `name:failed:CODE`.
    static func hooks(_ text: String) -> [GuestAck.Hook]? {
        if text == "-" { return [] }
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.count <= GuestProtocol.maxHooks else { return nil }
        var hooks: [GuestAck.Hook] = []
        for item in items {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 2, isName(parts[0], maxBytes: 64) else { return nil }
            switch (parts[1], parts.count) {
            case ("ok", 2): hooks.append(.init(name: parts[0], outcome: .ok))
            case ("timeout", 2): hooks.append(.init(name: parts[0], outcome: .timeout))
            case ("failed", 3):
                guard parts[2].utf8.count <= 3, let code = UInt8(parts[2]) else { return nil }
                hooks.append(.init(name: parts[0], outcome: .failed(exitCode: code)))
            default: return nil
            }
        }
        return hooks
    }
}
