#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - ISOBuilder

/// Builds ISO 9660 images (Rock Ridge + Joliet) in process with libisofs, to memory or to a file.
///
/// The builder is a small value holding its configuration; it can be shared freely between tasks.
///
/// ```swift
/// let builder = ISOBuilder(maxImageBytes: 8 << 20)
/// let image = ISOImage(volumeID: "cidata", entries: [
///     .file("meta-data", text: "instance-id: vm1\n"),
///     .file("user-data", text: "#cloud-config\n", mode: 0o400),
/// ])
/// let written = try builder.writeImage(image, to: "/var/lib/recontextd/vm1.iso", mode: 0o640, group: kvmGroup)
/// ```
///
/// - Important: Builds are blocking C work (about 0.2 ms for a typical context image, more for
///   large ones, plus `fsync` when writing a file), and all builds in the process are serialised by
///   one lock because libisofs has unsynchronised globals. Calling from many tasks at once is safe,
///   but callers should run builds off Swift's cooperative thread pool (e.g. on a dedicated thread
///   or executor) so that waiting on the lock or the disk never starves other tasks.
public struct ISOBuilder: Sendable {
    // MARK: - Configuration

    /// The default for ``maxImageBytes``: 16 MiB.
    public static let defaultMaxImageBytes = 16 * 1024 * 1024

    /// The largest image this builder produces, in bytes.
    ///
    /// Checked twice: against the total size of the input files before any work, and against the
    /// exact size of the laid-out image before any byte is produced. Either failure is an
    /// ``ISOBuilderError/Code/imageTooLarge`` error that names the limit and the size.
    public var maxImageBytes: Int

    /// The value of `SOURCE_DATE_EPOCH` (decimal seconds since 1970) used for images that have no
    /// ``ISOImage/modificationTime``; `nil` or empty means "use the current time".
    ///
    /// Defaults to the process environment, read when the builder is created. A value that is not a
    /// decimal integer in range makes builds fail with ``ISOBuilderError/Code/invalidModificationTime``,
    /// as the reproducible-builds specification asks.
    public var sourceDateEpoch: String?

    /// Creates a builder.
    ///
    /// - Parameters:
    ///   - maxImageBytes: The size limit for inputs and image, in bytes.
    ///   - sourceDateEpoch: The `SOURCE_DATE_EPOCH` value to honour; defaults to the environment's.
    public init(
        maxImageBytes: Int = ISOBuilder.defaultMaxImageBytes,
        sourceDateEpoch: String? = ISOBuilder.environmentSourceDateEpoch()
    ) {
        self.maxImageBytes = maxImageBytes
        self.sourceDateEpoch = sourceDateEpoch
    }

    /// The `SOURCE_DATE_EPOCH` variable of the process environment, or `nil` when unset.
    public static func environmentSourceDateEpoch() -> String? {
        getenv("SOURCE_DATE_EPOCH").map { String(cString: $0) }
    }

    // MARK: - Building

    /// Builds the image in memory.
    ///
    /// - Parameter image: What to put into the image.
    /// - Returns: The bytes of the ISO image (a multiple of 2048 bytes).
    /// - Throws: ``ISOBuilderError`` for invalid input (volume id, paths, names, modes, time), inputs
    ///   or an image above ``maxImageBytes``, or a libisofs failure.
    ///
    /// - Important: Blocking; serialised process-wide. Run off the cooperative thread pool.
    public func makeImage(_ image: ISOImage) throws(ISOBuilderError) -> [UInt8] {
        let plan = try ImagePlan(validating: image, time: resolvedTime(for: image), maxImageBytes: maxImageBytes)
        let maxImageBytes = self.maxImageBytes
        return try Libisofs.withLibrary { () throws(ISOBuilderError) -> [UInt8] in
            let tree = try LibisofsImage(volumeID: plan.volumeID, time: plan.time, rootMode: plan.rootMode)
            var directories: [String: OpaquePointer] = ["": tree.root]
            for directory in plan.directories {
                directories[directory.path] = try tree.addDirectory(directory, in: directories[directory.parentPath]!)
            }
            for file in plan.files {
                try tree.addFile(file, in: directories[file.parentPath]!)
            }
            let options = try LibisofsWriteOptions(time: plan.time)
            let source = try LibisofsBurnSource(image: tree, options: options)
            let size = source.size
            guard size <= maxImageBytes else {
                throw ISOBuilderError(
                    code: .imageTooLarge,
                    message: "the image would be \(size) bytes, more than the limit of \(maxImageBytes) bytes "
                        + "(\(plan.files.count) files with \(plan.inputBytes) bytes of content)"
                )
            }
            return try source.readAll()
        }
    }

    /// Builds the image and writes it atomically to a file.
    ///
    /// The image is built in memory, then written to a new temporary file in the destination's
    /// directory (created with `O_CREAT|O_EXCL|O_NOFOLLOW`), given `mode` (and `group`), flushed with
    /// `fsync`, renamed over `path`, and the directory is flushed too. On any failure up to the rename
    /// the temporary file is removed and `path` is left as it was (if only the final flush of the
    /// directory fails, the new image is in place and the error says so). Symbolic links are never
    /// followed: the destination's directory is opened with `O_DIRECTORY|O_NOFOLLOW` and every later
    /// call is relative to it; a destination that is a symbolic link (or a directory) is refused.
    ///
    /// - Parameters:
    ///   - image: What to put into the image.
    ///   - path: The destination file. Its directory must exist; the file itself may exist and is replaced.
    ///   - mode: The permission bits of the new file (at most `0o7777`); the umask does not apply.
    ///   - group: A group to give the file (`fchown`), or `nil` to keep the creating process's group.
    ///   - durable: Flush the file and its directory to disk before returning (the default). With
    ///     `false` the file is still complete when it appears under its name, and readable by anyone
    ///     from then on, but survives a power loss only after ``makeDurable(_:)``.
    /// - Returns: The number of bytes written.
    /// - Throws: ``ISOBuilderError`` as ``makeImage(_:)`` does, plus ``ISOBuilderError/Code/symbolicLink``,
    ///   ``ISOBuilderError/Code/unsupportedFileType``, ``ISOBuilderError/Code/invalidMode`` and
    ///   ``ISOBuilderError/Code/systemCall`` for the file work.
    ///
    /// - Important: Blocking (including `fsync`); the build part is serialised process-wide, the file
    ///   part is not. Run off the cooperative thread pool.
    @discardableResult
    public func writeImage(_ image: ISOImage, to path: String, mode: mode_t, group: gid_t? = nil, durable: Bool = true)
        throws(ISOBuilderError) -> Int
    {
        try ImagePlan.validateMode(mode, path: path)
        let bytes = try makeImage(image)
        return try AtomicFileWriter.write(bytes, to: path, mode: mode, group: group, durable: durable)
    }

    /// Flushes an image written with `durable: false` to disk: `fsync` of the file, then of its
    /// directory. Never follows a symbolic link.
    ///
    /// - Parameter path: The image file.
    /// - Throws: ``ISOBuilderError/Code/systemCall`` naming the path and the failed call.
    /// - Important: Blocking. Run off the cooperative thread pool.
    public static func makeDurable(_ path: String) throws(ISOBuilderError) {
        try AtomicFileWriter.makeDurable(path)
    }

    /// Checks an image without building it.
    ///
    /// Runs every check ``makeImage(_:)`` runs before calling libisofs: volume id, paths, names,
    /// modes, duplicates and conflicts, the time (including `SOURCE_DATE_EPOCH`), and the input size.
    ///
    /// - Parameter image: The image to check.
    /// - Throws: ``ISOBuilderError`` for the first problem found.
    public func validate(_ image: ISOImage) throws(ISOBuilderError) {
        _ = try ImagePlan(validating: image, time: resolvedTime(for: image), maxImageBytes: maxImageBytes)
    }

    // MARK: - Time

    /// The time recorded in an image: its own, else ``sourceDateEpoch``, else now; in whole seconds.
    ///
    /// - Parameter image: The image.
    /// - Returns: The time that ``makeImage(_:)`` records for `image`.
    /// - Throws: ``ISOBuilderError/Code/invalidModificationTime`` for a malformed `SOURCE_DATE_EPOCH`.
    public func modificationTime(for image: ISOImage) throws(ISOBuilderError) -> Date {
        Date(timeIntervalSince1970: TimeInterval(try resolvedTime(for: image)))
    }

    /// ``modificationTime(for:)`` as seconds since the epoch.
    private func resolvedTime(for image: ISOImage) throws(ISOBuilderError) -> Int {
        if let time = image.modificationTime {
            let seconds = time.timeIntervalSince1970.rounded(.down)
            // Out-of-range values are reported by ImagePlan; clamp only so the conversion cannot trap.
            return seconds.isFinite ? Int(max(-1, min(seconds, Double(ImagePlan.endOfTime)))) : -1
        }
        if let value = sourceDateEpoch, !value.isEmpty {
            guard value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let seconds = Int(value) else {
                throw ISOBuilderError(
                    code: .invalidModificationTime,
                    message:
                        "SOURCE_DATE_EPOCH=\(String(reflecting: value)) is not a decimal number of seconds since 1970"
                )
            }
            return seconds
        }
        return Int(Date().timeIntervalSince1970.rounded(.down))
    }
}
