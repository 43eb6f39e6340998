import Foundation
import TestSupport
import Testing

/// The rule for tests that need a real part of the machine (``RealPart``): skip loudly, or fail
/// where `RECONTEXTD_REQUIRE_REAL_TESTS=1` (CI) says every part must be there.
@Suite("RealPart: a missing part skips, or fails where it is required")
struct RealPartTests {
    static let probeVariable = "RECONTEXTD_REALPART_PROBE"

    @Test(
        "the decision",
        arguments: [
            (nil, false, RealPart.Decision.run), (nil, true, .run),
            ("needs root", false, .skip("needs root")), ("needs root", true, .fail("needs root")),
        ] as [(String?, Bool, RealPart.Decision)]
    )
    func decision(missing: String?, required: Bool, expected: RealPart.Decision) {
        #expect(RealPart.decision(missing: missing, required: required) == expected)
    }

    /// Runs ``RealPartProbe`` in a child process of this test binary; returns its status and output.
    static func runProbe(required: Bool) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--testing-library", "swift-testing", "--filter", "RealPartProbe"]
        var environment = ProcessInfo.processInfo.environment
        environment[probeVariable] = "1"
        environment[RealPart.requireVariable] = required ? "1" : nil
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test("with the switch, a test whose part is missing fails with the reason; without it, it skips saying why")
    func childProcess() throws {
        let required = try Self.runProbe(required: true)
        #expect(required.status != 0, "\(required.output)")
        #expect(required.output.contains("the probe's part is missing"), "\(required.output)")
        #expect(required.output.contains(RealPart.requireVariable), "\(required.output)")

        let optional = try Self.runProbe(required: false)
        #expect(optional.status == 0, "\(optional.output)")
        #expect(optional.output.contains("skipped"), "\(optional.output)")
        #expect(optional.output.contains("the probe's part is missing"), "\(optional.output)")
    }
}

/// A suite whose part is always missing; it exists only in the child process of ``RealPartTests``
/// (elsewhere it names no missing part and is disabled, so it neither runs nor fails).
@Suite(
    "RealPartProbe",
    .enabled(if: ProcessInfo.processInfo.environment[RealPartTests.probeVariable] != nil, "runs in its own process"),
    .realPart(
        missing: ProcessInfo.processInfo.environment[RealPartTests.probeVariable] != nil
            ? "the probe's part is missing" : nil))
struct RealPartProbe {
    @Test("needs a part that is never there")
    func needsMissingPart() {
        Issue.record("ran although its part is missing")
    }
}
