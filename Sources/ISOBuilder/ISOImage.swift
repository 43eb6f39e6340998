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

// MARK: - ISOImage

/// What goes into an ISO 9660 image: a volume id and a tree of files and folders held in memory.
///
/// Paths are relative and use `/` between components, e.g. `"openstack/latest/meta_data.json"`.
/// Directories that are only implied by the paths of other entries are created with
/// ``Entry/defaultDirectoryMode``; add an explicit ``Entry/directory(_:mode:)`` entry to choose
/// the mode of a directory or to have an empty one.
///
/// Every image is written with Rock Ridge (names, POSIX modes, times) and Joliet (names as
/// UTF-16, without the `;1` version suffix) at ISO level 3, and the volume id is kept exactly as
/// given (`cidata`, `config-2` and `CONTEXT` come out in that case). Nothing here is checked until
/// the image is built; ``ISOBuilder/validate(_:)`` checks without building.
///
/// ```swift
/// var image = ISOImage(volumeID: "config-2")
/// image.addFile(at: "openstack/latest/meta_data.json", contents: Array(json.utf8))
/// image.addFile(at: "openstack/latest/user_data", contents: userData, mode: 0o400)
/// let bytes = try ISOBuilder().makeImage(image)
/// ```
public struct ISOImage: Sendable, Hashable {
    // MARK: - Properties

    /// The volume id of the primary volume descriptor, at most 32 bytes of printable ASCII.
    ///
    /// It is written in exactly this case. Joliet readers see at most its first 16 characters
    /// (the Joliet field is 16 UCS-2 characters wide).
    public var volumeID: String

    /// The files and directories of the image, in any order.
    public var entries: [Entry]

    /// The time recorded for every file, directory and the volume descriptors.
    ///
    /// A fixed time makes the image byte-reproducible. When `nil`, the builder uses
    /// `SOURCE_DATE_EPOCH` (see ``ISOBuilder/sourceDateEpoch``) and otherwise the current time.
    /// Fractions of a second are dropped; the supported range is 1970-01-01T00:00:00Z to
    /// 2155-12-31T23:59:59Z (the last year an ISO 9660 directory record can hold).
    public var modificationTime: Date?

    /// The POSIX permission bits of the root directory, recorded through Rock Ridge.
    public var rootDirectoryMode: mode_t

    // MARK: - Initialisers

    /// Creates an image description.
    ///
    /// - Parameters:
    ///   - volumeID: The volume id, e.g. `"cidata"`; kept in exactly this case.
    ///   - entries: Files and directories; intermediate directories are implied.
    ///   - modificationTime: A fixed time for reproducible output, or `nil` for `SOURCE_DATE_EPOCH`
    ///     or the current time.
    ///   - rootDirectoryMode: The permission bits of the root directory.
    public init(
        volumeID: String,
        entries: [Entry] = [],
        modificationTime: Date? = nil,
        rootDirectoryMode: mode_t = Entry.defaultDirectoryMode
    ) {
        self.volumeID = volumeID
        self.entries = entries
        self.modificationTime = modificationTime
        self.rootDirectoryMode = rootDirectoryMode
    }

    // MARK: - Adding entries

    /// Appends a regular file.
    ///
    /// - Parameters:
    ///   - path: The relative path inside the image, e.g. `"openstack/latest/meta_data.json"`.
    ///   - contents: The bytes of the file.
    ///   - mode: The POSIX permission bits recorded through Rock Ridge.
    public mutating func addFile(at path: String, contents: [UInt8], mode: mode_t = Entry.defaultFileMode) {
        entries.append(.file(path, contents: contents, mode: mode))
    }

    /// Appends a directory, to choose its mode or to have it even when it stays empty.
    ///
    /// - Parameters:
    ///   - path: The relative path inside the image, e.g. `"openstack/latest"`.
    ///   - mode: The POSIX permission bits recorded through Rock Ridge.
    public mutating func addDirectory(at path: String, mode: mode_t = Entry.defaultDirectoryMode) {
        entries.append(.directory(path, mode: mode))
    }

    /// The total number of content bytes of all file entries.
    public var totalFileBytes: Int {
        entries.reduce(0) { total, entry in
            if case .file(let contents) = entry.kind { return total + contents.count }
            return total
        }
    }
}

// MARK: - Entry

extension ISOImage {
    /// One file or directory of an ``ISOImage``.
    public struct Entry: Sendable, Hashable {
        /// The permission bits files get unless told otherwise: `0o444` (read-only for all).
        public static let defaultFileMode: mode_t = 0o444
        /// The permission bits directories get unless told otherwise: `0o555`.
        public static let defaultDirectoryMode: mode_t = 0o555

        /// Whether an entry is a file (with its bytes) or a directory.
        public enum Kind: Sendable, Hashable {
            /// A regular file with these contents.
            case file(contents: [UInt8])
            /// A directory.
            case directory
        }

        /// The relative path inside the image, components separated by `/`.
        public var path: String
        /// A file with its contents, or a directory.
        public var kind: Kind
        /// The POSIX permission bits (at most `0o7777`) recorded through Rock Ridge.
        public var mode: mode_t

        /// Creates an entry.
        ///
        /// - Parameters:
        ///   - path: The relative path inside the image.
        ///   - kind: A file with its contents, or a directory.
        ///   - mode: The POSIX permission bits.
        public init(path: String, kind: Kind, mode: mode_t) {
            self.path = path
            self.kind = kind
            self.mode = mode
        }

        /// A regular file.
        ///
        /// - Parameters:
        ///   - path: The relative path inside the image.
        ///   - contents: The bytes of the file.
        ///   - mode: The POSIX permission bits.
        public static func file(_ path: String, contents: [UInt8], mode: mode_t = defaultFileMode) -> Entry {
            Entry(path: path, kind: .file(contents: contents), mode: mode)
        }

        /// A regular file whose contents are the UTF-8 encoding of a string.
        ///
        /// - Parameters:
        ///   - path: The relative path inside the image.
        ///   - text: The text of the file, stored as UTF-8.
        ///   - mode: The POSIX permission bits.
        public static func file(_ path: String, text: String, mode: mode_t = defaultFileMode) -> Entry {
            Entry(path: path, kind: .file(contents: Array(text.utf8)), mode: mode)
        }

        /// A directory.
        ///
        /// - Parameters:
        ///   - path: The relative path inside the image.
        ///   - mode: The POSIX permission bits.
        public static func directory(_ path: String, mode: mode_t = defaultDirectoryMode) -> Entry {
            Entry(path: path, kind: .directory, mode: mode)
        }
    }
}
