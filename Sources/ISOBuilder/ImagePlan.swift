#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - ImagePlan

/// A validated ``ISOImage``: every rule checked, directories listed parents first, ready to be handed
/// to libisofs without further checks.
///
/// Validation happens here, in Swift, before libisofs sees anything, so that every problem gets a
/// clear ``ISOBuilderError`` naming the path and the limit, and so that libisofs never silently
/// mangles a name (it would otherwise map characters, truncate long names, or leave a file out of the
/// Joliet tree when its path is too long).
struct ImagePlan {
    /// A directory to create, after its parent.
    struct Directory {
        /// The full path, e.g. `"openstack/latest"`.
        var path: String
        /// The parent's full path, `""` for the root.
        var parentPath: String
        /// The last component.
        var name: String
        /// Permission bits.
        var mode: mode_t
    }

    /// A file to create.
    struct File {
        /// The full path.
        var path: String
        /// The parent's full path, `""` for the root.
        var parentPath: String
        /// The last component.
        var name: String
        /// The bytes.
        var contents: [UInt8]
        /// Permission bits.
        var mode: mode_t
    }

    // MARK: - Limits

    /// ISO 9660 volume identifier field width.
    static let maxVolumeIDBytes = 32
    /// Rock Ridge NM limit as enforced by libisofs.
    static let maxRockRidgeNameBytes = 255
    /// Joliet leaf name limit (UCS-2/UTF-16 code units).
    static let maxJolietNameUnits = 64
    /// Joliet path limit as libisofs computes it: 1 + Σ(1 + 2·units) per component.
    static let maxJolietPathBytes = 240
    /// Characters that libisofs replaces by `_` in Joliet names.
    static let jolietForbidden: Set<Unicode.Scalar> = ["*", "/", ":", ";", "?", "\\"]
    /// First second that an ISO 9660 directory record cannot express (2156-01-01T00:00:00Z).
    static let endOfTime = 5_869_584_000

    // MARK: - Properties

    /// The volume id, validated.
    let volumeID: String
    /// Seconds since the epoch for every timestamp.
    let time: Int
    /// Root directory permission bits.
    let rootMode: mode_t
    /// Directories, each after its parent.
    let directories: [Directory]
    /// Files, sorted by path.
    let files: [File]
    /// Sum of the file sizes.
    let inputBytes: Int

    // MARK: - Validation

    /// Validates an image and resolves its time.
    ///
    /// - Parameters:
    ///   - image: The image description.
    ///   - time: Seconds since the epoch to record (already resolved by the builder).
    ///   - maxImageBytes: The size limit the inputs are checked against.
    /// - Throws: ``ISOBuilderError`` naming the first problem found, in entry order.
    ///
    /// About 100 lines on purpose: one pass over the entries with every conflict rule next to the
    /// node table it checks; split up, the rules would each need the table and the entry order.
    init(validating image: ISOImage, time: Int, maxImageBytes: Int) throws(ISOBuilderError) {
        try Self.validateVolumeID(image.volumeID)
        try Self.validateTime(time)
        try Self.validateMode(image.rootDirectoryMode, path: "/")

        enum Node {
            case impliedDirectory
            case directory(mode: mode_t)
            case file(contents: [UInt8], mode: mode_t)
        }
        var nodes: [String: Node] = [:]
        var order: [String] = []
        var inputBytes = 0

        for entry in image.entries {
            let components = try Self.validatePath(entry.path)
            try Self.validateMode(entry.mode, path: entry.path)
            if case .file(let contents) = entry.kind {
                inputBytes += contents.count
                if inputBytes > maxImageBytes {
                    throw ISOBuilderError(
                        code: .imageTooLarge,
                        message: "the input files total more than the limit of \(maxImageBytes) bytes "
                            + "(\(image.totalFileBytes) bytes in \(image.entries.count) entries)",
                        path: entry.path
                    )
                }
            }

            // Every proper prefix is a directory.
            var prefix = ""
            for component in components.dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                switch nodes[prefix] {
                case nil:
                    nodes[prefix] = .impliedDirectory
                    order.append(prefix)
                case .file:
                    throw ISOBuilderError(
                        code: .pathConflict,
                        message: "'\(prefix)' is a file, but '\(entry.path)' needs it to be a directory",
                        path: entry.path
                    )
                case .impliedDirectory, .directory:
                    break
                }
            }

            let path = components.joined(separator: "/")
            switch (nodes[path], entry.kind) {
            case (nil, .file(let contents)):
                nodes[path] = .file(contents: contents, mode: entry.mode)
                order.append(path)
            case (nil, .directory):
                nodes[path] = .directory(mode: entry.mode)
                order.append(path)
            case (.impliedDirectory, .directory):
                nodes[path] = .directory(mode: entry.mode)
            case (.impliedDirectory, .file):
                throw ISOBuilderError(
                    code: .pathConflict,
                    message: "'\(path)' is given as a file, but other entries need it to be a directory",
                    path: entry.path
                )
            case (.directory, .file), (.file, .directory):
                throw ISOBuilderError(
                    code: .pathConflict,
                    message: "'\(path)' is given both as a file and as a directory",
                    path: entry.path
                )
            case (.directory, .directory), (.file, .file):
                throw ISOBuilderError(
                    code: .duplicatePath,
                    message: "'\(path)' is given more than once",
                    path: entry.path
                )
            }
        }

        // Sorting puts every directory after its parent (a parent path is a prefix of its children's)
        // and makes the libisofs insertion order independent of the entry order.
        var directories: [Directory] = []
        var files: [File] = []
        for path in order.sorted() {
            let (parentPath, name) = Self.split(path)
            switch nodes[path]! {
            case .impliedDirectory:
                directories.append(
                    Directory(path: path, parentPath: parentPath, name: name, mode: ISOImage.Entry.defaultDirectoryMode)
                )
            case .directory(let mode):
                directories.append(Directory(path: path, parentPath: parentPath, name: name, mode: mode))
            case .file(let contents, let mode):
                files.append(File(path: path, parentPath: parentPath, name: name, contents: contents, mode: mode))
            }
        }

        self.volumeID = image.volumeID
        self.time = time
        self.rootMode = image.rootDirectoryMode
        self.directories = directories
        self.files = files
        self.inputBytes = inputBytes
    }

    // MARK: - Rules

    /// Checks the volume id: 1 to 32 bytes of printable ASCII, no trailing space.
    static func validateVolumeID(_ volumeID: String) throws(ISOBuilderError) {
        let bytes = Array(volumeID.utf8)
        guard !bytes.isEmpty else {
            throw ISOBuilderError(code: .invalidVolumeID, message: "the volume id is empty")
        }
        guard bytes.count <= maxVolumeIDBytes else {
            throw ISOBuilderError(
                code: .invalidVolumeID,
                message:
                    "the volume id '\(volumeID)' is \(bytes.count) bytes long; ISO 9660 allows at most \(maxVolumeIDBytes)"
            )
        }
        guard bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw ISOBuilderError(
                code: .invalidVolumeID,
                message: "the volume id \(String(reflecting: volumeID)) has characters other than printable ASCII"
            )
        }
        guard bytes.last != 0x20 else {
            throw ISOBuilderError(
                code: .invalidVolumeID,
                message:
                    "the volume id \(String(reflecting: volumeID)) ends with a space, which ISO 9660 padding would lose"
            )
        }
    }

    /// Checks that `time` fits in every ISO 9660 timestamp field.
    static func validateTime(_ time: Int) throws(ISOBuilderError) {
        guard (0..<endOfTime).contains(time) else {
            throw ISOBuilderError(
                code: .invalidModificationTime,
                message: "the modification time \(time) (seconds since 1970) is outside the supported range "
                    + "0 to \(endOfTime - 1) (1970-01-01 to 2155-12-31 UTC)"
            )
        }
    }

    /// Checks that a mode has only permission bits.
    static func validateMode(_ mode: mode_t, path: String) throws(ISOBuilderError) {
        guard mode & ~0o7777 == 0 else {
            throw ISOBuilderError(
                code: .invalidMode,
                message:
                    "the mode 0o\(String(mode, radix: 8)) of '\(path)' has bits outside the permission bits 0o7777",
                path: path
            )
        }
    }

    /// Checks a path and returns its components.
    static func validatePath(_ path: String) throws(ISOBuilderError) -> [Substring] {
        guard !path.isEmpty else {
            throw ISOBuilderError(code: .invalidPath, message: "an entry has an empty path", path: path)
        }
        guard !path.utf8.contains(0) else {
            throw ISOBuilderError(
                code: .invalidPath,
                message: "the path \(String(reflecting: path)) contains a NUL byte",
                path: path
            )
        }
        guard !path.hasPrefix("/") else {
            throw ISOBuilderError(
                code: .invalidPath,
                message: "the path '\(path)' is absolute; paths inside the image are relative (no leading '/')",
                path: path
            )
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        var jolietPathBytes = 1
        for component in components {
            guard !component.isEmpty else {
                throw ISOBuilderError(
                    code: .invalidPath,
                    message: "the path '\(path)' has an empty component (a doubled or trailing '/')",
                    path: path
                )
            }
            guard component != ".", component != ".." else {
                throw ISOBuilderError(
                    code: .invalidPath,
                    message: "the path '\(path)' has a '\(component)' component; only plain names are allowed",
                    path: path
                )
            }
            if let bad = component.unicodeScalars.first(where: {
                $0.value < 0x20 || $0.value == 0x7F || jolietForbidden.contains($0)
            }) {
                throw ISOBuilderError(
                    code: .invalidName,
                    message:
                        "the name '\(component)' in '\(path)' contains \(String(reflecting: Character(bad))) "
                        + "(U+\(String(bad.value, radix: 16, uppercase: true))), "
                        + "which Joliet cannot carry unchanged (control characters and * : ; ? \\ are refused)",
                    path: path
                )
            }
            let bytes = component.utf8.count
            guard bytes <= maxRockRidgeNameBytes else {
                throw ISOBuilderError(
                    code: .nameTooLong,
                    message:
                        "the name '\(component.prefix(40))…' in '\(path)' is \(bytes) bytes long; "
                        + "Rock Ridge allows at most \(maxRockRidgeNameBytes)",
                    path: path
                )
            }
            let units = component.utf16.count
            guard units <= maxJolietNameUnits else {
                throw ISOBuilderError(
                    code: .nameTooLong,
                    message:
                        "the name '\(component)' in '\(path)' is \(units) UTF-16 units long; "
                        + "Joliet allows at most \(maxJolietNameUnits)",
                    path: path
                )
            }
            jolietPathBytes += 1 + 2 * units
        }
        guard jolietPathBytes <= maxJolietPathBytes else {
            throw ISOBuilderError(
                code: .pathTooLong,
                message:
                    "the path '\(path)' takes \(jolietPathBytes) bytes in the Joliet tree; "
                    + "Joliet allows at most \(maxJolietPathBytes) "
                    + "(one byte per '/' plus two per UTF-16 unit)",
                path: path
            )
        }
        return components
    }

    /// Splits a validated path into its parent path (`""` for the root) and last component.
    static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }
}
