import Digest

// MARK: - RenderedFile

/// One file of a context image: path inside the image, bytes, permission bits.
public struct RenderedFile: Sendable, Hashable {
    /// The path inside the image, relative, `/`-separated.
    public var path: String
    /// The bytes.
    public var contents: [UInt8]
    /// The permission bits (at most `0777`).
    public var mode: UInt16

    /// Creates a file.
    /// - Parameters:
    ///   - path: The path inside the image.
    ///   - contents: The bytes.
    ///   - mode: The permission bits.
    public init(path: String, contents: [UInt8], mode: UInt16) {
        self.path = path
        self.contents = contents
        self.mode = mode
    }

    /// The contents as UTF-8 text (invalid sequences repaired), for tests and display.
    public var text: String { String(decoding: contents, as: UTF8.self) }
}

// MARK: - RenderedContext

/// Everything that goes into a context image, and the hash that identifies its content.
///
/// The generation record (``ContextRenderer/generationRecord(generation:host:contentHash:domain:)``)
/// is not part of ``files`` nor of ``contentHash``: add it when building the image, so that
/// "skip when unchanged" compares content only.
public struct RenderedContext: Sendable, Hashable {
    /// The format rendered.
    public var format: ContextFormat
    /// The ISO 9660 volume id.
    public var volumeID: String
    /// The files, sorted by path (byte-wise UTF-8 order), paths unique.
    public var files: [RenderedFile]
    /// ``computeHash(volumeID:files:)`` of ``volumeID`` and ``files``.
    public var contentHash: String

    /// Creates a rendered context: sorts the files and computes the hash.
    /// - Parameters:
    ///   - format: The format.
    ///   - volumeID: The volume id.
    ///   - files: The files, in any order, paths unique.
    public init(format: ContextFormat, volumeID: String, files: [RenderedFile]) {
        self.format = format
        self.volumeID = volumeID
        self.files = files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        self.contentHash = Self.computeHash(volumeID: volumeID, files: self.files)
    }

    /// The file at a path, if any.
    /// - Parameter path: The path inside the image.
    public func file(_ path: String) -> RenderedFile? {
        files.first { $0.path == path }
    }

    /// Total size of all files in bytes.
    public var totalBytes: Int { files.reduce(0) { $0 + $1.contents.count } }

    /// The content hash: lower-case hex SHA-256 of a canonical encoding of the volume id and the
    /// files, independent of the order the files are given in.
    ///
    /// Encoding (all integers big-endian): the bytes `recontext-content-v1`, a 0 byte, the volume
    /// id as (UInt32 length, UTF-8 bytes), the UInt32 file count, then for each file in byte-wise
    /// path order: (UInt32 length, UTF-8 path), UInt16 mode, (UInt64 length, contents).
    /// - Parameters:
    ///   - volumeID: The volume id.
    ///   - files: The files.
    /// - Returns: 64 lower-case hex digits.
    public static func computeHash(volumeID: String, files: [RenderedFile]) -> String {
        var hasher = SHA256()
        hasher.update(Array("recontext-content-v1".utf8) + [0])
        hasher.update(bigEndian: UInt32(volumeID.utf8.count))
        hasher.update(Array(volumeID.utf8))
        hasher.update(bigEndian: UInt32(files.count))
        for file in files.sorted(by: { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }) {
            hasher.update(bigEndian: UInt32(file.path.utf8.count))
            hasher.update(Array(file.path.utf8))
            hasher.update(bigEndian: file.mode)
            hasher.update(bigEndian: UInt64(file.contents.count))
            hasher.update(file.contents)
        }
        return SHA256.hex(digest: hasher.finalize())
    }
}
