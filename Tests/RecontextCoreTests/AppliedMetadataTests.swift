import Foundation
import Testing

@testable import RecontextCore

@Suite("Applied-state metadata")
struct AppliedMetadataTests {
    static let state = AppliedState(
        generation: 7,
        contentHash: String(repeating: "ab", count: 32),
        host: "hv2",
        time: Date(timeIntervalSince1970: 1_764_124_380.75),
        imagePath: "/var/lib/recontextd/images/web1 & co-7.iso",
        format: .configDrive
    )

    @Test("serialize, then parse: the same record, time in whole seconds")
    func roundTrip() throws {
        let xml = AppliedMetadata.serialize(Self.state)
        #expect(xml.hasPrefix("<applied generation=\"7\" content-hash=\"abab"))
        #expect(xml.contains("time=\"2025-11-26T02:33:00Z\""))
        #expect(xml.contains("image=\"/var/lib/recontextd/images/web1 &amp; co-7.iso\""))
        let parsed = try AppliedMetadata.parse(xml)
        #expect(parsed == Self.state)
        #expect(parsed.time.timeIntervalSince1970 == 1_764_124_380)
    }

    @Test("what libvirt hands back: prefixed, with the namespace declared")
    func libvirtShape() throws {
        let xml = """
            <recontext-applied:applied xmlns:recontext-applied="urn:recontextd:applied:1" generation="18446744073709551615" \
            content-hash="h" host="hv1" time="2024-02-29T23:59:59.123Z" image="/i.iso" format="opennebula"/>
            """
        let state = try AppliedMetadata.parse(xml)
        #expect(state.generation == UInt64.max)
        #expect(state.format == .openNebula)
        #expect(AppliedMetadata.formatTime(state.time) == "2024-02-29T23:59:59Z")
    }

    @Test(
        "times far apart format and parse consistently",
        arguments: [0.0, 951_782_400, 1_709_251_199, 4_102_444_800, 253_402_300_799])
    func times(seconds: Double) throws {
        let date = Date(timeIntervalSince1970: seconds)
        let text = AppliedMetadata.formatTime(date)
        #expect(AppliedMetadata.parseTime(text) == date)
        let iso = ISO8601DateFormatter()
        iso.timeZone = TimeZone(identifier: "UTC")
        #expect(iso.string(from: date) == text)
    }

    @Test(
        "broken records are refused naming the field",
        arguments: [
            (
                #"<applied content-hash="h" host="a" time="2025-01-01T00:00:00Z" image="/i" format="files"/>"#,
                "applied.generation"
            ),
            (
                #"<applied generation="-1" content-hash="h" host="a" time="2025-01-01T00:00:00Z" image="/i" format="files"/>"#,
                "applied.generation"
            ),
            (
                #"<applied generation="1" content-hash="h" host="a" time="yesterday" image="/i" format="files"/>"#,
                "applied.time"
            ),
            (
                #"<applied generation="1" content-hash="h" host="a" time="2025-13-01T00:00:00Z" image="/i" format="files"/>"#,
                "applied.time"
            ),
            (
                #"<applied generation="1" content-hash="h" host="a" time="2025-01-01T00:00:00Z" image="/i" format="iso"/>"#,
                "applied.format"
            ),
            (
                #"<applied generation="1" content-hash="h" host="a" time="2025-01-01T00:00:00Z" image="/i" format="files" extra="1"/>"#,
                "applied.extra"
            ),
            (#"<context/>"#, "applied"),
            (#"<!DOCTYPE applied><applied/>"#, "applied"),
        ]
    )
    func refused(xml: String, field: String) {
        let error = Fixtures.expectContextError { _ = try AppliedMetadata.parse(xml) }
        #expect(error?.field == field, "\(String(describing: error))")
    }
}
