#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - DirectoryReader

/// Walks a directory with `openat`/`fstatat` and never follows a symbolic link.
struct DirectoryReader {
    /// Limit on the total bytes of files read.
    let maxTotalBytes: Int
    /// Bytes read so far.
    private(set) var totalBytes = 0
    /// Entries found so far.
    private(set) var entries: [ISOImage.Entry] = []
    /// Deeper trees cannot be valid anyway (the Joliet path limit allows about 80 levels).
    private static let maxDepth = 128

    /// Creates a reader with a size limit.
    init(maxTotalBytes: Int) {
        self.maxTotalBytes = maxTotalBytes
    }

    /// Reads the tree at `path`.
    ///
    /// - Returns: The permission bits of `path` itself.
    mutating func read(_ path: String) throws(ISOBuilderError) -> mode_t {
        let directory = try openDirectoryNoFollow(path, for: "open the input directory")
        defer { close(directory) }
        var status = stat()
        guard fstat(directory, &status) == 0 else {
            throw .system("fstat", errno: errno, path: path, what: "inspect the input directory")
        }
        try walk(directory, diskPath: path, imagePath: "", depth: 0)
        entries.sort { $0.path < $1.path }
        return status.st_mode & 0o7777
    }

    /// Adds the contents of an open directory.
    private mutating func walk(_ directory: Int32, diskPath: String, imagePath: String, depth: Int)
        throws(ISOBuilderError)
    {
        guard depth < Self.maxDepth else {
            throw ISOBuilderError(
                code: .pathTooLong,
                message: "the input directory '\(diskPath)' is nested more than \(Self.maxDepth) levels deep",
                path: diskPath
            )
        }
        for name in try names(in: directory, diskPath: diskPath) {
            let childDisk = diskPath.hasSuffix("/") ? diskPath + name : diskPath + "/" + name
            let childImage = imagePath.isEmpty ? name : imagePath + "/" + name
            var status = stat()
            guard fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw .system("fstatat", errno: errno, path: childDisk, what: "inspect an input file")
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    throw .system("openat", errno: errno, path: childDisk, what: "open an input directory")
                }
                defer { close(child) }
                entries.append(.directory(childImage, mode: status.st_mode & 0o7777))
                try walk(child, diskPath: childDisk, imagePath: childImage, depth: depth + 1)
            case S_IFREG:
                let contents = try readFile(named: name, in: directory, diskPath: childDisk)
                entries.append(.file(childImage, contents: contents, mode: status.st_mode & 0o7777))
            case S_IFLNK:
                throw ISOBuilderError(
                    code: .symbolicLink,
                    message:
                        "the input '\(childDisk)' is a symbolic link; links are not followed or copied into images",
                    path: childDisk
                )
            default:
                throw ISOBuilderError(
                    code: .unsupportedFileType,
                    message: "the input '\(childDisk)' is neither a regular file nor a directory",
                    path: childDisk
                )
            }
        }
    }

    /// The names in a directory except `.` and `..`, sorted.
    private func names(in directory: Int32, diskPath: String) throws(ISOBuilderError) -> [String] {
        // fdopendir takes over the descriptor it is given, so give it a duplicate.
        let duplicate = dup(directory)
        guard duplicate >= 0 else {
            throw .system("dup", errno: errno, path: diskPath, what: "list an input directory")
        }
        guard let stream = fdopendir(duplicate) else {
            let error = errno
            close(duplicate)
            throw .system("fdopendir", errno: error, path: diskPath, what: "list an input directory")
        }
        defer { closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 {
                    throw .system("readdir", errno: errno, path: diskPath, what: "list an input directory")
                }
                break
            }
            let name: String? = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) {
                    String(validatingCString: $0)
                }
            }
            guard let name else {
                throw ISOBuilderError(
                    code: .invalidName,
                    message: "a name in the input directory '\(diskPath)' is not valid UTF-8",
                    path: diskPath
                )
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Reads one regular file, refusing anything that turned into something else since `fstatat`.
    private mutating func readFile(named name: String, in directory: Int32, diskPath: String) throws(ISOBuilderError)
        -> [UInt8]
    {
        // O_NONBLOCK: should the name have become a FIFO since fstatat, opening it must not hang.
        let file = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard file >= 0 else {
            throw .system("openat", errno: errno, path: diskPath, what: "open an input file")
        }
        defer { close(file) }
        var status = stat()
        guard fstat(file, &status) == 0 else {
            throw .system("fstat", errno: errno, path: diskPath, what: "inspect an input file")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw ISOBuilderError(
                code: .unsupportedFileType,
                message: "the input '\(diskPath)' is not a regular file",
                path: diskPath
            )
        }
        var contents: [UInt8] = []
        contents.reserveCapacity(min(Int(status.st_size), maxTotalBytes - totalBytes + 1))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { posixRead(file, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("read", errno: errno, path: diskPath, what: "read an input file")
            }
            if count == 0 { break }
            totalBytes += count
            guard totalBytes <= maxTotalBytes else {
                throw ISOBuilderError(
                    code: .imageTooLarge,
                    message: "the files under the input directory total more than the limit of \(maxTotalBytes) bytes "
                        + "(reached while reading '\(diskPath)')",
                    path: diskPath
                )
            }
            contents.append(contentsOf: chunk[..<count])
        }
        return contents
    }
}
