import ArgumentParser
import ISOBuilder

#if canImport(Glibc)
    import Glibc
#endif

/// `recontextd build-iso`: an image from a folder, in process (like `genisoimage -R -J -V ID`).
struct BuildISOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build-iso",
        abstract: "Build an ISO9660 image (Rock Ridge + Joliet) from a folder, in process.",
        discussion: """
            Like `genisoimage -R -J -V ID -o FILE DIR` or cloud-localds, without a subprocess. The volume id \
            keeps its exact case (cidata, config-2, CONTEXT). The image is written atomically. Set \
            SOURCE_DATE_EPOCH for byte-reproducible images.
            """)

    @Option(name: .customLong("volume-id"), help: "The volume id, e.g. cidata, config-2 or CONTEXT.")
    var volumeID: String

    @Option(name: .shortAndLong, help: "Where to write the image.")
    var output: String

    @Option(help: "Mode of the image file, octal.")
    var mode: String = "0644"

    @Option(name: .customLong("max-size"), help: "Largest image allowed, in bytes.")
    var maxSize: Int = ISOBuilder.defaultMaxImageBytes

    @Argument(help: "The folder whose contents become the image's root.")
    var directory: String

    func validate() throws {
        guard UInt16(mode, radix: 8) != nil else {
            throw ValidationError("--mode must be an octal mode like 0644, got '\(mode)'")
        }
    }

    func run() throws {
        let builder = ISOBuilder(maxImageBytes: maxSize)
        do {
            let image = try ISOImage(volumeID: volumeID, contentsOfDirectory: directory, maxTotalBytes: maxSize)
            let written = try builder.writeImage(image, to: output, mode: mode_t(UInt16(mode, radix: 8)!))
            print("\(output): \(written) bytes, volume id '\(volumeID)', \(image.entries.count) entries")
        } catch {
            printError("recontextd build-iso: \(error)")
            throw ExitCode(65) // EX_DATAERR
        }
    }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    var line = message
    if !line.hasSuffix("\n") { line += "\n" }
    line.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
}
