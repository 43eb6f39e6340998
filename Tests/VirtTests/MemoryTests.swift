import Foundation
import Synchronization
import Testing

@testable import Virt

/// Memory growth over many parses and events: measured and printed, never timed.
@Suite("memory", .serialized)
struct MemoryTests {
    /// Resident set size of this process in bytes, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test("10,000 domain-XML parses grow memory by under 5 MB")
    func domainXMLParses() throws {
        let xml = TestDriverTests.domainXML(name: "memory-xml")
        for _ in 0..<500 { _ = try DomainXML.cdroms(in: xml) }  // warm-up
        let before = Self.residentBytes()
        for _ in 0..<10_000 {
            let cdroms = try DomainXML.cdroms(in: xml)
            precondition(cdroms.count == 1)
        }
        let growth = Self.residentBytes() - before
        print("memory: 10000 domain-XML parses grew RSS by \(growth / 1024) KiB")
        #expect(growth < 5 * 1024 * 1024)
    }

    @Test("10,000 received events grow memory by under 5 MB")
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
        try cycle(250)  // warm-up: 500 events
        await collector.waitFor(500)
        let before = Self.residentBytes()
        try cycle(5_000)  // 10,000 events: STARTED/BOOTED and STOPPED/DESTROYED each
        let received = await collector.waitFor(10_500)
        let growth = Self.residentBytes() - before
        print("memory: \(received - 500) events received, RSS grew by \(growth / 1024) KiB")
        #expect(received >= 10_500)
        #expect(growth < 5 * 1024 * 1024)
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
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let current = count.value.withLock { $0 }
            if current >= target { return current }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return count.value.withLock { $0 }
    }
}
