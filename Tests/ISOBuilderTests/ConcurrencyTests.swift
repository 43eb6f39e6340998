import Digest
import Foundation
import ISOBuilder
import Testing

// MARK: - Concurrent builds

/// libisofs has unsynchronised globals; the builder serialises builds, so many tasks may build at once.
@Suite("Concurrent builds")
struct ConcurrencyTests {
    @Test("50 builds from concurrent tasks all verify")
    func fiftyConcurrentBuilds() async throws {
        let builder = ISOBuilder()
        let images = (0..<50).map { index in
            var image = Fixtures.tenFiles(volumeID: ["cidata", "config-2", "CONTEXT"][index % 3], seed: index)
            image.addFile(at: "index.txt", contents: Array("build \(index)\n".utf8), mode: 0o600)
            return image
        }

        let built = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, image) in images.enumerated() {
                group.addTask { (index, try builder.makeImage(image)) }
            }
            var results = [[UInt8]](repeating: [], count: images.count)
            for try await (index, bytes) in group { results[index] = bytes }
            return results
        }

        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        for (index, bytes) in built.enumerated() {
            // The same bytes as a build on its own...
            #expect(
                SHA256.hex(bytes) == SHA256.hex(try builder.makeImage(images[index])),
                "image \(index) differs from a serial build")
            // ...and an independent reader finds every file, by both names, with the right volume id.
            let path = directory.path + "/image-\(index).iso"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let report = try ReaderReport.read(path)
            let expected = ExpectedTree(images[index])
            #expect(report.volumeID == images[index].volumeID)
            #expect(report.files == expected.reportFiles, "image \(index)")
            #expect(report.jolietFiles == expected.reportFiles.mapValues(\.sha256), "image \(index)")
        }
    }

    @Test("concurrent writes to files in one directory all land complete")
    func concurrentWrites() async throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let builder = ISOBuilder()
        let path = directory.path
        let sizes = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try builder.writeImage(
                        Fixtures.tenFiles(seed: index), to: "\(path)/image-\(index % 5).iso", mode: 0o644)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(sizes.count == 20)
        // Five destinations written four times each; no temporary file is left behind.
        #expect(try directory.contents() == (0..<5).map { "image-\($0).iso" })
        for index in 0..<5 {
            let bytes = try #require(FileManager.default.contents(atPath: "\(path)/image-\(index).iso"))
            let candidates = try [index, index + 5, index + 10, index + 15].map {
                SHA256.hex(try builder.makeImage(Fixtures.tenFiles(seed: $0)))
            }
            #expect(candidates.contains(SHA256.hex(Array(bytes))), "image-\(index).iso is one complete image")
        }
    }
}
