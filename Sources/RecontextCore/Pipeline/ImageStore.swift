import FoundationEssentials

/// Where context images live: builds them atomically, lists and removes them.
///
/// The daemon implements it with the in-process ISO builder over the configured image directory.
public protocol ImageStore: Sendable {
    /// The directory holding the images; every image path the pipeline uses is inside it.
    var directory: String { get }

    /// Builds the image of `context` plus `record` and writes it atomically at `name` in the
    /// directory (temporary name, rename): complete when it appears under its name, readable by
    /// QEMU from then on, but not yet flushed to disk: see ``makeDurable(path:)``. Returns the full path.
    /// - Throws: ``ImageStoreError`` when it cannot be built or written (disk full, too large).
    func write(_ context: RenderedContext, record: RenderedFile, name: String) async throws(ImageStoreError) -> String

    /// Flushes an image (and the directory entry naming it) to disk, so that it survives a power
    /// loss. The pipeline calls it after the live insert and before the persistent definition
    /// names the image: the flush stays off the path from event to inserted image.
    /// - Throws: ``ImageStoreError`` when the flush fails (the image is then not to be persisted).
    func makeDurable(path: String) async throws(ImageStoreError)

    /// Removes an image (never follows symlinks; a missing file is not an error).
    func remove(path: String) async throws(ImageStoreError)

    /// Whether an image exists at `path`.
    func exists(path: String) async -> Bool

    /// Every file in the directory that looks like one of our images (see ``ImageNaming``),
    /// including temporary files of interrupted writes (``ImageNaming/parseTemporary(_:)``).
    func storedImages() async throws(ImageStoreError) -> [StoredImage]
}

/// An image file found in the image directory.
public struct StoredImage: Sendable, Hashable {
    /// The file name.
    public var name: String
    /// The full path.
    public var path: String
    /// The file's modification time.
    public var modified: Date
    /// Creates a description.
    public init(name: String, path: String, modified: Date) {
        self.name = name
        self.path = path
        self.modified = modified
    }
}

/// A failure to build, write or remove an image.
public struct ImageStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message, naming the path and the cause.
    public var message: String
    /// True when retrying later may succeed (e.g. the disk was full).
    public var isTransient: Bool
    /// Creates an error.
    public init(_ message: String, isTransient: Bool) {
        self.message = message
        self.isTransient = isTransient
    }
    public var description: String { message }
}

/// How image files are named: `<domain uuid>-g<generation>-<first 12 hex of the content hash>.iso`.
///
/// A new name for every generation: QEMU keeps an open file, so rewriting one in place is
/// invisible to the guest (see the field notes).
public enum ImageNaming {
    /// The file name of a generation's image.
    public static func name(domain: DomainIdentity, generation: UInt64, contentHash: String) -> String {
        "\(domain.uuid)-g\(generation)-\(contentHash.prefix(12)).iso"
    }

    /// Parses an image file name into the domain UUID, generation and content-hash prefix, or
    /// `nil` if it is not one of ours.
    public static func parse(_ name: String) -> (uuid: String, generation: UInt64, hashPrefix: String)? {
        guard name.hasSuffix(".iso"), name.utf8.count > 36 + 2 else { return nil }
        let uuid = String(name.prefix(36))
        guard uuid.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }),
            uuid.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12]
        else { return nil }
        let rest = name.dropFirst(36).dropLast(4) // "-g<gen>-<hash>"
        guard rest.hasPrefix("-g") else { return nil }
        let parts = rest.dropFirst(2).split(separator: "-")
        guard parts.count == 2, let generation = UInt64(parts[0]), parts[1].count == 12,
            parts[1].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        return (uuid, generation, String(parts[1]))
    }

    /// The parsed name of `path` when it names an image directly in `directory`, else `nil`.
    public static func parse(path: String, directory: String) -> (uuid: String, generation: UInt64, hashPrefix: String)?
    {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let name = String(path.dropFirst(prefix.count))
        guard !name.contains("/") else { return nil }
        return parse(name)
    }

    /// Parses the name of a temporary file the atomic writer leaves behind when it is killed
    /// mid-write (`.<image name>.tmp-<pid>-<hex>`) into the image it was to become, or `nil`.
    ///
    /// Such a file never has a final-looking name (it starts with a dot), is never attached, and
    /// is removed by image collection once older than the grace period.
    public static func parseTemporary(_ name: String) -> (uuid: String, generation: UInt64, hashPrefix: String)? {
        guard name.hasPrefix("."), let marker = name.ranges(of: ".iso.tmp-").last else { return nil }
        let suffix = name[marker.upperBound...]
        let parts = suffix.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isASCII), parts[0].allSatisfy(\.isNumber),
            !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isHexDigit })
        else { return nil }
        return parse(String(name[name.index(after: name.startIndex)..<marker.lowerBound]) + ".iso")
    }
}
