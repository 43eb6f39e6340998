import FoundationEssentials

// MARK: - JSONValue

/// A JSON value: what the images' JSON files are built from, and what a JSON document given by a
/// VM is checked against (FoundationEssentials has `JSONEncoder`/`JSONDecoder` but no
/// `JSONSerialization`).
enum JSONValue: Codable, Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// An object of strings.
    static func strings(_ values: [String: String]) -> JSONValue {
        .object(values.mapValues { .string($0) })
    }

    /// One decoder for every parse (a run parses the generation record; configdrive documents too).
    private static let decoder = JSONDecoder()

    /// Parses a JSON document (any value at the top, as RFC 8259 allows).
    /// - Parameter bytes: The document.
    /// - Returns: The value, or `nil` when the bytes are not JSON.
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? decoder.decode(JSONValue.self, from: Data(bytes))
    }

    /// The member `key` of an object; `nil` for anything else.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The text of a string value.
    var stringValue: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// A non-negative integer value.
    var unsignedValue: UInt64? {
        switch self {
        case .unsigned(let value): value
        case .integer(let value) where value >= 0: UInt64(value)
        default: nil
        }
    }
}

// MARK: - JSONOutput

/// Deterministic JSON: sorted keys, pretty-printed, slashes unescaped, trailing newline (the bytes
/// `JSONSerialization` wrote before, so images keep their content hash).
enum JSONOutput {
    /// One encoder for every file of every run (its options never change).
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }()

    static func encode(_ value: JSONValue) -> [UInt8] {
        // Strings, integers, objects and arrays always encode; only a non-finite Double could fail,
        // and none is ever built.
        let data = (try? encoder.encode(value)) ?? Data()
        return Array(data) + [UInt8(ascii: "\n")]
    }
}
