import Foundation
import ISOBuilder
import TestSupport
import Testing

// MARK: - Memory

/// Checks that builds do not leak. Build times are measured by the benchmark package
/// (`Benchmarks/`, `scripts/bench`), never by tests.
@Suite("Memory: builds do not leak", .serialized)
struct MemoryLeakTests {
    @Test("10 000 builds do not grow memory (no leak per build)")
    func noLeak() throws {
        let image = Fixtures.tenFiles()
        let builder = ISOBuilder()
        for _ in 0..<200 { _ = try builder.makeImage(image) }
        let before = ResidentMemory.bytes()
        try #require(before > 0, "/proc/self/statm unreadable")
        for _ in 0..<10_000 { _ = try builder.makeImage(image) }
        let after = ResidentMemory.bytes()
        let growth = after - before
        print(
            "ISOBuilder memory: RSS \(before / 1024) KiB before, \(after / 1024) KiB after 10 000 builds "
                + "(\(growth / 1024) KiB growth)"
        )
        // A leak of even the smallest part of a build (the 40 KB of file copies) would add about
        // 400 MB; other tests running at the same time may allocate some memory too.
        #expect(growth < 64 * 1024 * 1024, "RSS grew by \(growth / 1024) KiB over 10 000 builds")
    }
}
