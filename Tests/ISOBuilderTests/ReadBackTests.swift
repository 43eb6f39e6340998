import Foundation
import ISOBuilder
import Testing

// MARK: - Read-back by independent readers

/// Images built here are read back by readers that do not share our code: isoinfo (genisoimage),
/// xorriso, and pycdlib; every file must come back byte for byte through both its Rock Ridge and
/// its Joliet name, with the volume id in exactly the case given.
@Suite("Read-back by independent readers")
struct ReadBackTests {
    /// The volume ids cloud-init, OpenStack config drive and OpenNebula look for.
    static let volumeIDs = ["cidata", "config-2", "CONTEXT"]

    /// Builds the fixture for `volumeID` into a file in `directory`.
    private func buildFixture(_ volumeID: String, in directory: TemporaryDirectory) throws -> (
        image: ISOImage, path: String
    ) {
        let image = Fixtures.contextImage(volumeID: volumeID)
        let path = directory.path + "/context.iso"
        let written = try ISOBuilder().writeImage(image, to: path, mode: 0o644)
        #expect(written % 2048 == 0)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == written)
        return (image, path)
    }

    @Test("pycdlib reads every file through Rock Ridge and Joliet", arguments: volumeIDs)
    func pycdlib(volumeID: String) throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (image, path) = try buildFixture(volumeID, in: directory)
        let expected = ExpectedTree(image)
        let report = try ReaderReport.read(path)

        #expect(report.volumeID == volumeID)
        #expect(report.jolietVolumeID == volumeID)
        #expect(report.rockRidge)
        #expect(report.joliet)
        #expect(report.files == expected.reportFiles)
        #expect(report.directories == expected.directories.mapValues { ReaderReport.Directory(mode: $0) })
        #expect(report.jolietFiles == expected.reportFiles.mapValues(\.sha256))
        #expect(report.jolietDirectories == expected.subdirectories)
    }

    @Test("isoinfo shows the exact volume id and extracts every file by both names", arguments: volumeIDs)
    func isoinfo(volumeID: String) throws {
        let isoinfo = try ExternalTools.require("isoinfo", package: "genisoimage")
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (image, path) = try buildFixture(volumeID, in: directory)
        let expected = ExpectedTree(image)

        let descriptor = try ExternalTools.output(isoinfo, ["-d", "-i", path]).text
        #expect(descriptor.split(separator: "\n").contains("Volume id: \(volumeID)"), "isoinfo -d said:\n\(descriptor)")
        #expect(descriptor.contains("Rock Ridge signatures"))
        #expect(descriptor.contains("Joliet with UCS level 3 found"))

        // The Rock Ridge listing shows every name with its mode string.
        let listing = try ExternalTools.output(isoinfo, ["-R", "-l", "-i", path]).text
        let listed = Self.parseIsoinfoListing(listing)
        for (file, (_, mode)) in expected.files {
            #expect(listed[file] == Self.modeString(mode), "\(file) in isoinfo -R -l:\n\(listing)")
        }
        for (directory, mode) in expected.directories where directory != "/" {
            #expect(listed[directory] == Self.modeString(mode), "\(directory) in isoinfo -R -l")
        }

        // The Joliet listing has the same names: no ";1" version suffix, no added dot.
        let jolietListing = Self.parseIsoinfoListing(try ExternalTools.output(isoinfo, ["-J", "-l", "-i", path]).text)
        for file in expected.files.keys where file.unicodeScalars.allSatisfy(\.isASCII) {
            #expect(jolietListing[file] != nil, "\(file) in isoinfo -J -l: \(jolietListing.keys.sorted())")
        }

        for (file, (contents, _)) in expected.files {
            let viaRockRidge = try ExternalTools.output(isoinfo, ["-R", "-x", file, "-i", path]).standardOutput
            #expect(Array(viaRockRidge) == contents, "isoinfo -R -x \(file)")
            // isoinfo converts Joliet names only to 8-bit charsets (no UTF-8), so a non-ASCII name
            // cannot be given to it as a UTF-8 argument; pycdlib and xorriso cover those names.
            guard file.unicodeScalars.allSatisfy(\.isASCII) else { continue }
            let viaJoliet = try ExternalTools.output(isoinfo, ["-J", "-x", file, "-i", path]).standardOutput
            #expect(Array(viaJoliet) == contents, "isoinfo -J -x \(file)")
        }
    }

    @Test("xorriso extracts every file through Rock Ridge (with modes) and Joliet", arguments: volumeIDs)
    func xorriso(volumeID: String) throws {
        let xorriso = try ExternalTools.require("xorriso", package: "xorriso")
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        let (image, path) = try buildFixture(volumeID, in: directory)
        let expected = ExpectedTree(image)

        let info = try ExternalTools.output(xorriso, ["-indev", path, "-pvd_info"]).text
        #expect(info.split(separator: "\n").contains("Volume Id    : \(volumeID)"), "xorriso -pvd_info said:\n\(info)")

        let listing = try ExternalTools.output(xorriso, ["-indev", path, "-find", "/", "-exec", "lsdl"]).text
        for file in expected.files.keys {
            #expect(listing.contains("'\(file)'"), "\(file) in xorriso -find listing:\n\(listing)")
        }

        for (tree, readFS) in [("rockridge", "any"), ("joliet", "norock")] {
            let target = directory.path + "/extract-" + tree
            _ = try ExternalTools.output(
                xorriso, ["-read_fs", readFS, "-indev", path, "-osirrox", "on", "-extract", "/", target])
            for (file, (contents, mode)) in expected.files {
                let extracted = FileManager.default.contents(atPath: target + file).map(Array.init)
                #expect(extracted == contents, "\(tree): \(file) extracted by xorriso")
                if tree == "rockridge" {
                    var status = stat()
                    #expect(lstat(target + file, &status) == 0)
                    #expect(UInt32(status.st_mode) == mode, "\(file) mode after xorriso extraction")
                }
            }
            for subdirectory in expected.subdirectories {
                var isDirectory: ObjCBool = false
                #expect(
                    FileManager.default.fileExists(atPath: target + subdirectory, isDirectory: &isDirectory)
                        && isDirectory.boolValue)
            }
            // Extraction made read-only directories; let the temporary directory be removed.
            _ = try? ExternalTools.run("/bin/chmod", ["-R", "u+rwx", target])
        }
    }

    // MARK: - isoinfo listing parsing

    /// Parses `isoinfo -R -l` output into "/path" → mode string (e.g. `-rw-------`).
    static func parseIsoinfoListing(_ listing: String) -> [String: String] {
        var result: [String: String] = [:]
        var directory = "/"
        for line in listing.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("Directory listing of ") {
                directory = String(line.dropFirst("Directory listing of ".count))
                continue
            }
            guard let bracket = line.range(of: "]  ") else { continue }
            var name = String(line[bracket.upperBound...])
            while name.hasSuffix(" ") { name.removeLast() }
            guard !name.isEmpty, name != ".", name != ".." else { continue }
            let mode = String(line.prefix(10))
            result[directory + name] = mode
        }
        return result
    }

    /// `ls -l` style mode string for an st_mode.
    static func modeString(_ mode: UInt32) -> String {
        let type: Character = (mode & 0o170000) == 0o040000 ? "d" : "-"
        let letters: [Character] = ["r", "w", "x"]
        var text = String(type)
        for bit in (0..<9).reversed() {
            text.append(mode & (1 << UInt32(bit)) != 0 ? letters[(8 - bit) % 3] : "-")
        }
        return text
    }
}
