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

// MARK: - Reading a directory from disk

extension ISOImage {
    /// Reads a directory tree from disk into entries, like `genisoimage -R -J` would take it.
    ///
    /// Regular files and directories are taken with their permission bits; hidden files are
    /// included; entries come out sorted by path. Nothing is followed: the directory itself, and
    /// everything under it, is opened with `O_NOFOLLOW` relative to its parent, and a symbolic link
    /// anywhere in the tree is an error, as is any other file type (device, FIFO, socket).
    ///
    /// - Parameters:
    ///   - path: The directory to read.
    ///   - maxTotalBytes: Reading stops with ``ISOBuilderError/Code/imageTooLarge`` once the files
    ///     total more than this.
    /// - Returns: One entry per file and per directory below `path` (not `path` itself).
    /// - Throws: ``ISOBuilderError`` with code ``ISOBuilderError/Code/symbolicLink``,
    ///   ``ISOBuilderError/Code/unsupportedFileType``, ``ISOBuilderError/Code/invalidName`` (a name
    ///   that is not UTF-8), ``ISOBuilderError/Code/imageTooLarge`` or ``ISOBuilderError/Code/systemCall``.
    public static func entries(
        fromDirectory path: String,
        maxTotalBytes: Int = ISOBuilder.defaultMaxImageBytes
    ) throws(ISOBuilderError) -> [Entry] {
        var reader = DirectoryReader(maxTotalBytes: maxTotalBytes)
        _ = try reader.read(path)
        return reader.entries
    }

    /// Creates an image from a directory on disk (see ``entries(fromDirectory:maxTotalBytes:)``), with
    /// the directory's own permission bits as the root directory's.
    ///
    /// - Parameters:
    ///   - volumeID: The volume id, kept in exactly this case.
    ///   - path: The directory to read.
    ///   - modificationTime: A fixed time, or `nil` for `SOURCE_DATE_EPOCH` or the current time.
    ///   - maxTotalBytes: The limit on the total size of the files read.
    /// - Throws: ``ISOBuilderError`` as ``entries(fromDirectory:maxTotalBytes:)`` does.
    public init(
        volumeID: String,
        contentsOfDirectory path: String,
        modificationTime: Date? = nil,
        maxTotalBytes: Int = ISOBuilder.defaultMaxImageBytes
    ) throws(ISOBuilderError) {
        var reader = DirectoryReader(maxTotalBytes: maxTotalBytes)
        let rootMode = try reader.read(path)
        self.init(
            volumeID: volumeID, entries: reader.entries, modificationTime: modificationTime, rootDirectoryMode: rootMode
        )
    }
}
