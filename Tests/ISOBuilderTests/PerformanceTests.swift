import Foundation
import ISOBuilder
import Testing

// MARK: - Performance and memory

/// Prints build times for the typical case (no timing asserts) and checks that builds do not leak.
///
/// Run alone for clean numbers: `swift test --filter PerformanceTests`.
@Suite("Performance and memory", .serialized)
struct PerformanceTests {
    /// Resident set size of this process in bytes, from /proc/self/statm.
    private func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let pages = try #require(Int(statm.split(separator: " ")[1]))
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Average duration per call in milliseconds.
    private func milliseconds(_ duration: Duration, count: Int) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.3f ms", seconds * 1000 / Double(count))
    }

    @Test("build time for 10 files of about 40 KB (printed)")
    func buildTime() throws {
        let image = Fixtures.tenFiles()
        let builder = ISOBuilder()
        #expect(image.totalFileBytes == 40_000)
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/bench.iso"

        for _ in 0..<50 { _ = try builder.makeImage(image) }
        let clock = ContinuousClock()
        let memoryRuns = 2000
        var size = 0
        let toMemory = try clock.measure {
            for _ in 0..<memoryRuns { size = try builder.makeImage(image).count }
        }
        let fileRuns = 300
        let toFile = try clock.measure {
            for _ in 0..<fileRuns { _ = try builder.writeImage(image, to: path, mode: 0o644) }
        }
        print(
            "ISOBuilder benchmark: 10 files, \(image.totalFileBytes) bytes of content, \(size)-byte image: "
                + "\(milliseconds(toMemory, count: memoryRuns)) per image to memory (\(memoryRuns) runs), "
                + "\(milliseconds(toFile, count: fileRuns)) per image to a file with fsync (\(fileRuns) runs)"
        )
    }

    @Test("10 000 builds do not grow memory (no leak per build)")
    func noLeak() throws {
        let image = Fixtures.tenFiles()
        let builder = ISOBuilder()
        for _ in 0..<200 { _ = try builder.makeImage(image) }
        let before = try residentBytes()
        for _ in 0..<10_000 { _ = try builder.makeImage(image) }
        let after = try residentBytes()
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
