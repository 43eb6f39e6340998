import Digest
import Foundation
import ISOBuilder
import Testing

// MARK: - Reproducible output

/// The same input and time give the same bytes, whichever way the time is given.
@Suite("Reproducible output")
struct ReproducibilityTests {
    @Test("two builds with the same fixed time are byte-identical")
    func sameFixedTime() throws {
        let image = Fixtures.contextImage(volumeID: "cidata")
        let first = try ISOBuilder().makeImage(image)
        let second = try ISOBuilder().makeImage(image)
        #expect(first.count == second.count)
        #expect(SHA256.hex(first) == SHA256.hex(second))
    }

    @Test("builds more than a second apart are byte-identical (no wall-clock time leaks in)")
    func wallClockDoesNotLeak() throws {
        let image = Fixtures.contextImage(volumeID: "cidata")
        let first = SHA256.hex(try ISOBuilder().makeImage(image))
        // A sleep on purpose: the wall clock must move past a second between the builds.
        Thread.sleep(forTimeInterval: 1.1)
        #expect(SHA256.hex(try ISOBuilder().makeImage(image)) == first)
    }

    @Test("file and memory output are the same bytes")
    func fileMatchesMemory() throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let image = Fixtures.contextImage(volumeID: "config-2")
        let path = directory.path + "/image.iso"
        let written = try ISOBuilder().writeImage(image, to: path, mode: 0o600)
        let onDisk = try #require(FileManager.default.contents(atPath: path))
        #expect(written == onDisk.count)
        #expect(SHA256.hex(Array(onDisk)) == SHA256.hex(try ISOBuilder().makeImage(image)))
    }

    @Test("entry order does not change the bytes")
    func entryOrder() throws {
        let image = Fixtures.contextImage(volumeID: "cidata")
        var shuffled = image
        shuffled.entries.reverse()
        shuffled.entries.swapAt(0, 3)
        #expect(SHA256.hex(try ISOBuilder().makeImage(image)) == SHA256.hex(try ISOBuilder().makeImage(shuffled)))
    }

    @Test("SOURCE_DATE_EPOCH gives the same bytes as the same fixed time, and is recorded")
    func sourceDateEpoch() throws {
        let fixed = Fixtures.contextImage(volumeID: "CONTEXT")
        var untimed = fixed
        untimed.modificationTime = nil
        let builder = ISOBuilder(sourceDateEpoch: "1700000000")

        #expect(try builder.modificationTime(for: untimed) == Fixtures.time)
        let fromEnvironment = SHA256.hex(try builder.makeImage(untimed))
        #expect(SHA256.hex(try builder.makeImage(untimed)) == fromEnvironment)
        #expect(SHA256.hex(try ISOBuilder().makeImage(fixed)) == fromEnvironment)

        // A fixed time on the image wins over SOURCE_DATE_EPOCH.
        #expect(SHA256.hex(try ISOBuilder(sourceDateEpoch: "1").makeImage(fixed)) == fromEnvironment)

        // The volume descriptor records 2023-11-14 22:13:20 UTC, read back by xorriso.
        let xorriso = try ExternalTools.require("xorriso", package: "xorriso")
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let path = directory.path + "/image.iso"
        try builder.writeImage(untimed, to: path, mode: 0o644)
        let info = try ExternalTools.output(xorriso, ["-indev", path, "-pvd_info"]).text
        #expect(info.contains("Creation Time: 2023111422132000"), "xorriso -pvd_info said:\n\(info)")
        #expect(info.contains("Modif. Time  : 2023111422132000"), "xorriso -pvd_info said:\n\(info)")
    }

    @Test("a different time gives different bytes")
    func differentTime() throws {
        var image = Fixtures.contextImage(volumeID: "cidata")
        let first = SHA256.hex(try ISOBuilder().makeImage(image))
        image.modificationTime = Fixtures.time.addingTimeInterval(1)
        #expect(SHA256.hex(try ISOBuilder().makeImage(image)) != first)
    }

    @Test("without a time or SOURCE_DATE_EPOCH the current time is used")
    func currentTime() throws {
        var image = Fixtures.tenFiles()
        image.modificationTime = nil
        let builder = ISOBuilder(sourceDateEpoch: "")
        let before = Date().timeIntervalSince1970.rounded(.down)
        let time = try builder.modificationTime(for: image).timeIntervalSince1970
        #expect(time >= before && time <= Date().timeIntervalSince1970)
        _ = try builder.makeImage(image)
    }

    @Test(
        "a malformed SOURCE_DATE_EPOCH is an error",
        arguments: ["yesterday", "-5", "1.5", " 1700000000", "99999999999999999999999"]
    )
    func malformedSourceDateEpoch(value: String) throws {
        var image = Fixtures.tenFiles()
        image.modificationTime = nil
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder(sourceDateEpoch: value).makeImage(image)
        }
        #expect(error.code == .invalidModificationTime)
        #expect(error.description.contains("SOURCE_DATE_EPOCH"))
    }

    @Test("a SOURCE_DATE_EPOCH beyond what ISO 9660 can record is an error")
    func outOfRangeSourceDateEpoch() throws {
        var image = Fixtures.tenFiles()
        image.modificationTime = nil
        let error = try #require(throws: ISOBuilderError.self) {
            try ISOBuilder(sourceDateEpoch: "6000000000").makeImage(image)
        }
        #expect(error.code == .invalidModificationTime)
        #expect(error.message.contains("2155"))
    }
}
