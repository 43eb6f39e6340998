import Foundation
import Testing

@testable import RecontextCore

/// What replaced Foundation-only calls in the daemon (it links FoundationEssentials only), checked
/// against the Foundation calls they replaced.
@Suite("Without Foundation: fixed-point text and JSON give what Foundation gave")
struct FoundationFreeTests {
    @Test("DecimalText.fixed agrees with String(format:) (printf)", arguments: [0, 1, 2])
    func fixedAgreesWithPrintf(decimals: Int) {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [
            0, -0.0, 0.5, 1.5, 2.5, -2.5, 0.125, 0.375, 9.995, 99.95, 123456.789, -0.004, 1e14, 616.55, 1e300,
        ]
        values += (0..<2000).map { _ in Double.random(in: -100_000...100_000, using: &generator) }
        values += (0..<2000).map { _ in Double(Int.random(in: -1_000_000...1_000_000, using: &generator)) / 1000 }
        for value in values {
            let expected = String(format: "%.\(decimals)f", value)
            #expect(DecimalText.fixed(value, decimals: decimals) == expected, "value \(value)")
        }
    }

    @Test("DecimalText.fixed: what is huge or not finite, as printf writes it")
    func fixedOutOfRange() {
        #expect(DecimalText.fixed(.infinity, decimals: 1) == "inf")
        #expect(DecimalText.fixed(-.infinity, decimals: 0) == "-inf")
        #expect(DecimalText.fixed(.nan, decimals: 1) == "nan")
        #expect(DecimalText.fixed(1e20, decimals: 2) == "100000000000000000000.00")
        #expect(DecimalText.fixed(-1e60, decimals: 1) == String(format: "%.1f", -1e60))
    }

    @Test("JSONOutput writes the bytes JSONSerialization wrote (sorted, pretty, slashes kept)")
    func jsonOutputMatchesJSONSerialization() throws {
        let value: JSONValue = .object([
            "b": .string("x/y \u{e9}\n\"\\\t\u{1}"), "a": .unsigned(UInt64.max), "n": .integer(-3), "z": .bool(true),
            "c": .object(["e": .object([:]), "d": .array([.string("1"), .null, .number(1.5)])]),
        ])
        let object: [String: Any] = [
            "b": "x/y \u{e9}\n\"\\\t\u{1}", "a": NSNumber(value: UInt64.max), "n": -3, "z": true,
            "c": ["e": [String: Any](), "d": ["1", NSNull(), 1.5] as [Any]] as [String: Any],
        ]
        let expected = try JSONSerialization.data(
            withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        #expect(JSONOutput.encode(value) == Array(expected) + [UInt8(ascii: "\n")])
    }

    @Test(
        "JSONValue.parse accepts what JSONSerialization accepts, fragments included",
        arguments: [
            "{}", "[]", "\"text\"", "42", "-1.5e3", "true", "null", " {\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\"} ",
            "18446744073709551615", "{", "[1,]", "{\"a\" 1}", "nul", "'x'", "", "{\"a\":1}{", "\"\\x\"", "01",
        ])
    func parseAgreesWithJSONSerialization(text: String) {
        let foundation = (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
        #expect((JSONValue.parse(Array(text.utf8)) != nil) == foundation, "\(text)")
    }

    @Test("a generation record reads back, its generation exact up to UInt64.max")
    func generationRecordRoundTrip() throws {
        let domain = DomainIdentity(name: "vm", uuid: "6f1f1c3e-8d7a-4d3b-9a55-2f0b5c0e1a11")
        for generation: UInt64 in [0, 1, 1 << 53 + 1, UInt64.max] {
            let file = ContextRenderer.generationRecord(
                generation: generation, host: "h", contentHash: "abc", domain: domain)
            let record = try #require(ContextRenderer.parseGenerationRecord(file.contents))
            #expect(record.generation == generation)
            #expect(record.host == "h" && record.contentHash == "abc" && record.domainUUID == domain.uuid)
        }
    }
}
