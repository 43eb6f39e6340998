import Foundation
import Testing

@testable import ISOBuilder

// MARK: - Failures while writing

/// A failure after the temporary file exists removes it and leaves the destination as it was.
/// Uses the internal failure injection of `AtomicFileWriter` (hence `@testable`).
@Suite("Failures while writing")
struct AtomicFileWriterFailureTests {
    @Test(
        "an injected failure removes the temporary file and leaves the old image untouched",
        arguments: [AtomicFileWriter.FailurePoint.afterWrite, .beforeRename]
    )
    func failureLeavesDestinationUntouched(point: AtomicFileWriter.FailurePoint) throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/vm1.iso"
        try Data("old image".utf8).write(to: URL(fileURLWithPath: path))
        let bytes = try ISOBuilder().makeImage(Fixtures.tenFiles())

        let error = try #require(throws: ISOBuilderError.self) {
            try AtomicFileWriter.write(bytes, to: path, mode: 0o644, group: nil, failingAt: point)
        }
        #expect(error.code == .systemCall)
        #expect(error.systemErrno == EIO)
        #expect(error.isTransient)
        #expect(try directory.contents() == ["vm1.iso"])
        #expect(FileManager.default.contents(atPath: path) == Data("old image".utf8))
    }

    @Test("an injected failure with no previous image leaves no file at all")
    func failureWithoutPreviousImage() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let bytes = try ISOBuilder().makeImage(Fixtures.tenFiles())
        #expect(throws: ISOBuilderError.self) {
            try AtomicFileWriter.write(
                bytes, to: directory.path + "/vm1.iso", mode: 0o644, group: nil, failingAt: .beforeRename)
        }
        #expect(try directory.contents().isEmpty)
    }
}
