import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Virt

/// Memory growth over many parses and events: measured and printed, never timed.
///
/// Resident memory is a process-wide figure and other suites run in parallel in the test process,
/// so the measurement runs in a child process of its own: the same test binary, filtered to
/// ``MemoryProbe``, which is enabled only there.
@Suite("memory")
struct MemoryTests {
    @Test("10,000 domain-XML parses and 10,000 received events each grow memory by under 5 MB (own process)")
    func isolatedMeasurement() throws {
        let binary = CommandLine.arguments[0]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--testing-library", "swift-testing", "--filter", "MemoryProbe"]
        var environment = ProcessInfo.processInfo.environment
        environment["RECONTEXTD_MEMORY_PROBE"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let figures = text.split(separator: "\n").filter { $0.hasPrefix("memory:") }
        for line in figures { print(line) }
        #expect(process.terminationStatus == 0, "\(text)")
        let growths = figures.compactMap { line -> Int? in
            guard let range = line.range(of: " by ", options: .backwards) else { return nil }
            // A growth can be negative (RSS shrank): "-244".
            let text = line[range.upperBound...]
            let sign = text.hasPrefix("-") ? "-" : ""
            return Int(sign + text.dropFirst(sign.count).prefix { $0.isNumber })
        }
        #expect(growths.count == 2, "\(text)")
        for kib in growths { #expect(kib < 5 * 1024, "grew by \(kib) KiB") }
    }
}

/// The measurements themselves; run only in the child process started by ``MemoryTests``.
@Suite(
    "MemoryProbe", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["RECONTEXTD_MEMORY_PROBE"] != nil, "runs in its own process"))
struct MemoryProbe {
    @Test("domain-XML parses")
    func domainXMLParses() throws {
        let xml = TestDriverTests.domainXML(name: "memory-xml")
        for _ in 0..<500 { _ = try DomainXML.cdroms(in: xml) } // warm-up
        let before = ResidentMemory.bytes()
        for _ in 0..<10_000 {
            let cdroms = try DomainXML.cdroms(in: xml)
            precondition(cdroms.count == 1)
        }
        let growth = ResidentMemory.bytes() - before
        print("memory: 10000 domain-XML parses grew RSS by \(growth / 1024) KiB")
    }

    @Test("received events")
    func events() async throws {
        let connection = try Connection.open(TestDriverTests.uri)
        defer { connection.close() }
        let collector = CountingConsumer(try connection.events())
        let name = "memory-events-\(UUID().uuidString.prefix(8))"
        let xml = TestDriverTests.domainXML(name: name)

        func cycle(_ count: Int) throws {
            for _ in 0..<count {
                let domain = try connection.createDomain(xml: xml)
                try domain.destroy()
            }
        }
        try cycle(250) // warm-up: 500 events
        await collector.waitFor(500)
        let before = ResidentMemory.bytes()
        try cycle(5_000) // 10,000 events: STARTED/BOOTED and STOPPED/DESTROYED each
        let received = await collector.waitFor(10_500)
        let growth = ResidentMemory.bytes() - before
        print("memory: \(received - 500) events received, RSS grew by \(growth / 1024) KiB")
        #expect(received >= 10_500)
    }
}

/// Counts events without keeping them.
final class CountingConsumer: Sendable {
    private let count = Counter()
    private let task: Task<Void, Never>

    final class Counter: Sendable {
        let value = Mutex(0)
    }

    init(_ events: DomainEventStream) {
        let count = self.count
        task = Task {
            for await event in events {
                if case .domain = event { count.value.withLock { $0 += 1 } }
            }
        }
    }

    deinit { task.cancel() }

    @discardableResult
    func waitFor(_ target: Int, timeout: Duration = .seconds(60)) async -> Int {
        await eventually(timeout: timeout) { count.value.withLock { $0 } >= target }
        return count.value.withLock { $0 }
    }
}
