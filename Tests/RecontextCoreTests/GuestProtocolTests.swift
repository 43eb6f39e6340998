import Foundation
import Testing

@testable import RecontextCore

@Suite("Host-guest channel: protocol 1, framing, rate guard, verdicts")
struct GuestProtocolTests {
    static let hash = String(repeating: "ab", count: 32)
    static let otherHash = String(repeating: "cd", count: 32)

    static func parse(_ text: String) -> Result<GuestMessage, GuestLineError> {
        GuestProtocol.parse(Array(text.utf8))
    }

    static func reason(_ text: String) -> GuestLineError? {
        if case .failure(let error) = parse(text) { return error }
        return nil
    }

    @Test("hello and applied, as the companion writes them")
    func validLines() throws {
        #expect(
            try Self.parse("recontext/1 hello version=0.2.0 applied=0 hash=-").get()
                == .hello(GuestHello(version: "0.2.0", applied: 0, contentHash: nil)))
        let line =
            "recontext/1 applied 3 result=hooks-failed hash=\(Self.hash) host=hv-b trigger=notify "
            + "hooks=10-monitoring:ok,20-ntp:failed:3,30-x:timeout ms=42 future-key=whatever\r"
        guard case .applied(let ack) = try Self.parse(line).get() else {
            Issue.record("not an ack")
            return
        }
        #expect(ack.generation == 3 && ack.result == .hooksFailed && ack.host == "hv-b" && ack.milliseconds == 42)
        #expect(ack.hooks.map(\.description) == ["10-monitoring:ok", "20-ntp:failed:3", "30-x:timeout"])
        #expect(ack.failedHooks.map(\.name) == ["20-ntp", "30-x"])
        #expect(GuestProtocol.generationLine(7, hash: Self.hash) == "recontext/1 generation 7 hash=\(Self.hash)\n")
    }

    @Test(
        "every rule: a refusal names the rule and the field, never the guest's bytes",
        arguments: [
            ("recontext/2 hello version=1 applied=0 hash=-", GuestLineError.Reason.unknownVersion, nil),
            ("recontext/1 reboot now=yes", .unknownVerb, nil),
            ("recontext/1  hello", .malformed, nil),
            ("recontext/1", .malformed, nil),
            ("recontext/1 hello version=1 version=2 applied=0 hash=-", .malformed, nil),
            ("recontext/1 hello version=1 applied=0 hash=- novalue", .malformed, nil),
            ("recontext/1 hello version=$(reboot) applied=0 hash=-", .badField, "version"),
            ("recontext/1 hello version=1 applied=-1 hash=-", .badField, "applied"),
            ("recontext/1 hello version=1 applied=0 hash=ABCD", .badField, "hash"),
            ("recontext/1 applied 0 result=ok", .badField, "generation"),
            ("recontext/1 applied 123456789012345678901 result=ok", .badField, "generation"),
            ("recontext/1 applied 18446744073709551616 result=ok", .badField, "generation"),
            ("recontext/1 applied 3 result=great hash=\(hash) host=h trigger=t hooks=-", .badField, "result"),
            ("recontext/1 applied 3 result=ok hash=\(hash) host=h/../x trigger=t hooks=-", .badField, "host"),
            ("recontext/1 applied 3 result=ok hash=\(hash) host=h trigger=t hooks=a:ok,,b:ok", .badField, "hooks"),
            ("recontext/1 applied 3 result=ok hash=\(hash) host=h trigger=t hooks=a:failed:256", .badField, "hooks"),
            ("recontext/1 applied 3 result=ok hash=\(hash) host=h trigger=t hooks=a:ok ms=-3", .badField, "ms"),
            ("recontext/1 applied 3 result=ok hash=\(hash) host=h trigger=t", .badField, "hooks"),
            ("recontext/1 hello version=1\u{7} applied=0 hash=-", .notPrintableASCII, nil),
            ("recontext/1 hello version=\u{e9} applied=0 hash=-", .notPrintableASCII, nil),
        ] as [(String, GuestLineError.Reason, String?)])
    func refusals(line: String, reason: GuestLineError.Reason, field: String?) {
        let error = Self.reason(line)
        #expect(error?.reason == reason)
        #expect(error?.field == field)
    }

    @Test("invalid UTF-8 and NUL bytes are refused")
    func invalidBytes() {
        for bytes: [UInt8] in [[0xFF, 0xFE], Array("recontext/1 hello".utf8) + [0], [0xC3, 0x28]] {
            guard case .failure(let error) = GuestProtocol.parse(bytes) else {
                Issue.record("accepted \(bytes)")
                continue
            }
            #expect(error.reason == .notPrintableASCII)
        }
    }

    @Test("33 hooks are too many")
    func tooManyHooks() {
        let hooks = (1...33).map { "h\($0):ok" }.joined(separator: ",")
        #expect(
            Self.reason("recontext/1 applied 3 result=ok hash=\(Self.hash) host=h trigger=t hooks=\(hooks)")?.field
                == "hooks")
    }

    @Test("the framer: lines across pieces, an overlong line dropped to its newline, bounded memory")
    func framer() {
        var framer = GuestLineFramer()
        #expect(framer.feed(Array("recontext/1 hel".utf8)).isEmpty)
        #expect(framer.feed(Array("lo\nab".utf8)) == [.line(Array("recontext/1 hello".utf8))])
        var items = framer.feed([UInt8](repeating: UInt8(ascii: "x"), count: 100_000))
        #expect(items == [.oversized])
        #expect(framer.pendingBytes == 0)
        items = framer.feed(Array("tail of the long line\nnext\n".utf8))
        #expect(items == [.line(Array("next".utf8))])
        // 511 bytes plus the newline is the longest line.
        let longest = [UInt8](repeating: UInt8(ascii: "y"), count: GuestProtocol.maxLineBytes - 1)
        #expect(framer.feed(longest + [10]) == [.line(longest)])
        #expect(framer.feed(longest + [UInt8(ascii: "y"), 10]) == [.oversized])
    }

    @Test("the rate guard: a burst, then the average; a flood mutes, a valid line resets the count")
    func rateGuard() {
        var guardian = GuestChannelGuard(limits: .init(burst: 4, perSecond: 2, floodDrops: 5, muteFor: .seconds(60)))
        let start = ContinuousClock.now
        var admitted: [Bool] = []
        for _ in 0..<5 { admitted.append(guardian.admit(at: start)) }
        admitted.append(guardian.admit(at: start + .milliseconds(500)))
        admitted.append(guardian.admit(at: start + .milliseconds(600)))
        #expect(admitted == [true, true, true, true, false, true, false])
        var verdicts: [GuestChannelGuard.Verdict] = []
        for _ in 0..<4 { verdicts.append(guardian.noteDrop(at: start)) }
        guardian.noteValid()
        for _ in 0..<5 { verdicts.append(guardian.noteDrop(at: start)) }
        #expect(verdicts.dropLast().allSatisfy { $0 == .keepOpen })
        #expect(verdicts.last == .mute(until: start + .seconds(60)))
    }

    @Test("verdicts: only the generation and hash inserted last are accepted")
    func verdicts() {
        let inserted = AppliedState(
            generation: 5, contentHash: Self.hash, host: "hv-b", time: Date(), imagePath: "/i/5.iso", format: .noCloud)
        func ack(_ generation: UInt64, _ hash: String = Self.hash) -> GuestAck {
            GuestAck(generation: generation, result: .ok, contentHash: hash, host: "hv-b", trigger: "notify", hooks: [])
        }
        #expect(GuestVerdict.judge(ack(5), inserted: inserted) == .accepted)
        #expect(GuestVerdict.judge(ack(4), inserted: inserted) == .stale)
        #expect(GuestVerdict.judge(ack(6), inserted: inserted).label == "rejected")
        #expect(GuestVerdict.judge(ack(5, Self.otherHash), inserted: inserted).label == "rejected")
        #expect(GuestVerdict.judge(ack(5), inserted: nil).label == "rejected")
    }

    @Test("the applied record carries the guest's acknowledgement, all three attributes or none")
    func appliedRecord() throws {
        var state = AppliedState(
            generation: 5, contentHash: Self.hash, host: "hv-b", time: Date(timeIntervalSince1970: 1_764_000_000),
            imagePath: "/i/5.iso", format: .noCloud)
        state.guest = GuestApplied(
            generation: 4, result: .hooksFailed, time: Date(timeIntervalSince1970: 1_764_000_100))
        let xml = AppliedMetadata.serialize(state)
        #expect(
            xml.contains("guest-generation=\"4\" guest-result=\"hooks-failed\" guest-time=\"2025-11-24T16:01:40Z\""))
        #expect(try AppliedMetadata.parse(xml) == state)
        let partial = xml.replacingOccurrences(of: " guest-result=\"hooks-failed\"", with: "")
        #expect(throws: ContextError.self) { try AppliedMetadata.parse(partial) }
        let badResult = xml.replacingOccurrences(of: "hooks-failed", with: "fine")
        #expect(throws: ContextError.self) { try AppliedMetadata.parse(badResult) }
    }
}
