#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - AtomicFileWriter

/// Writes bytes to a file so that the file appears only when complete: temporary file, `fsync`,
/// `renameat`, `fsync` of the directory. Never follows symbolic links.
///
/// The two `fsync`s can be left for later (``write(_:to:mode:group:durable:failingAt:)`` with
/// `durable: false`, then ``makeDurable(_:)``): the file still appears only when complete (its bytes
/// are written before the rename, and every reader sees them through the page cache, also after
/// the writer is killed); only its survival of a power loss waits for ``makeDurable(_:)``.
enum AtomicFileWriter {
    /// Where a test may make ``write(_:to:mode:group:failingAt:)`` fail after the temporary file exists.
    enum FailurePoint: Sendable {
        /// After the bytes are written, before `fchmod`.
        case afterWrite
        /// Just before `renameat`.
        case beforeRename
    }

    /// How many temporary names to try when one is taken.
    private static let attempts = 16

    /// Writes `bytes` atomically to `path`.
    ///
    /// - Parameters:
    ///   - bytes: The complete contents.
    ///   - path: The destination; its parent directory must exist and is opened with `O_NOFOLLOW`.
    ///   - mode: Permission bits for the new file.
    ///   - group: A group id to `fchown` the file to, or `nil`.
    ///   - durable: `fsync` the file before the rename and the directory after it; when `false`,
    ///     call ``makeDurable(_:)`` before anything that must survive a power loss refers to the file.
    ///   - failurePoint: For tests: fail with `EIO` at this point.
    /// - Returns: `bytes.count`.
    static func write(
        _ bytes: [UInt8],
        to path: String,
        mode: mode_t,
        group: gid_t?,
        durable: Bool = true,
        failingAt failurePoint: FailurePoint? = nil
    ) throws(ISOBuilderError) -> Int {
        let (directoryPath, name) = try split(path)

        // The directory: never through a symbolic link in its last component.
        let directory = try openDirectoryNoFollow(directoryPath, for: "open the destination directory")
        defer { close(directory) }

        // The destination, if it exists, must be a regular file: refuse symbolic links and directories.
        var status = stat()
        if fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 {
            switch status.st_mode & S_IFMT {
            case S_IFREG:
                break
            case S_IFLNK:
                throw ISOBuilderError(
                    code: .symbolicLink,
                    message: "refusing to write '\(path)': it is a symbolic link, which is never followed or replaced",
                    path: path
                )
            default:
                throw ISOBuilderError(
                    code: .unsupportedFileType,
                    message: "refusing to write '\(path)': it exists and is not a regular file",
                    path: path
                )
            }
        } else if errno != ENOENT {
            throw .system("fstatat", errno: errno, path: path, what: "inspect the destination")
        }

        let (file, temporaryName) = try createTemporaryFile(in: directory, for: name, directoryPath: directoryPath)
        var fileOpen = true
        var renamed = false
        defer {
            if fileOpen { close(file) }
            if !renamed { unlinkat(directory, temporaryName, 0) }
        }
        let temporaryPath = directoryPath == "/" ? "/" + temporaryName : directoryPath + "/" + temporaryName

        try writeAll(bytes, to: file, path: temporaryPath)
        if failurePoint == .afterWrite {
            throw .system("write", errno: EIO, path: temporaryPath, what: "write the image (injected failure)")
        }
        if let group, fchown(file, uid_t.max, group) != 0 { // uid_t.max is (uid_t)-1: keep the owner
            throw .system("fchown", errno: errno, path: temporaryPath, what: "give the image group \(group)")
        }
        // After fchown, which may clear set-id bits.
        guard fchmod(file, mode) == 0 else {
            throw .system("fchmod", errno: errno, path: temporaryPath, what: "set mode 0o\(String(mode, radix: 8))")
        }
        if durable, fsync(file) != 0 {
            throw .system("fsync", errno: errno, path: temporaryPath, what: "flush the image to disk")
        }
        fileOpen = false
        guard close(file) == 0 else {
            throw .system("close", errno: errno, path: temporaryPath, what: "close the image")
        }
        if failurePoint == .beforeRename {
            throw .system("renameat", errno: EIO, path: path, what: "move the image into place (injected failure)")
        }
        guard renameat(directory, temporaryName, directory, name) == 0 else {
            throw .system("renameat", errno: errno, path: path, what: "move the image into place")
        }
        renamed = true
        guard !durable || fsync(directory) == 0 else {
            // The new image is already in place; only its durability across a crash is in doubt.
            throw .system(
                "fsync", errno: errno, path: directoryPath,
                what: "flush the directory after moving the new image into place at '\(path)'"
            )
        }
        return bytes.count
    }

    /// Makes a file written with `durable: false` survive a power loss: `fsync` of the file, then
    /// of its directory (which holds the rename). Never follows a symbolic link.
    /// - Throws: ``ISOBuilderError`` naming the path and the failed call.
    static func makeDurable(_ path: String) throws(ISOBuilderError) {
        let (directoryPath, name) = try split(path)
        let directory = try openDirectoryNoFollow(directoryPath, for: "open the image's directory")
        defer { close(directory) }
        let file = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { throw .system("openat", errno: errno, path: path, what: "open the image to flush it") }
        defer { close(file) }
        guard fsync(file) == 0 else {
            throw .system("fsync", errno: errno, path: path, what: "flush the image to disk")
        }
        guard fsync(directory) == 0 else {
            throw .system("fsync", errno: errno, path: directoryPath, what: "flush the directory holding '\(path)'")
        }
    }

    // MARK: - Steps

    /// Splits `path` into its directory (`.` when there is none) and a plain last component.
    private static func split(_ path: String) throws(ISOBuilderError) -> (directory: String, name: String) {
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw ISOBuilderError(
                code: .invalidPath, message: "the output path \(String(reflecting: path)) is empty or contains NUL",
                path: path)
        }
        let directory: String
        let name: String
        if let slash = path.lastIndex(of: "/") {
            let head = String(path[..<slash])
            directory = head.isEmpty ? "/" : head
            name = String(path[path.index(after: slash)...])
        } else {
            directory = "."
            name = path
        }
        guard !name.isEmpty, name != ".", name != ".." else {
            throw ISOBuilderError(
                code: .invalidPath, message: "the output path '\(path)' does not name a file", path: path)
        }
        return (directory, name)
    }

    /// Creates a new, empty, private temporary file next to the destination.
    private static func createTemporaryFile(
        in directory: Int32,
        for name: String,
        directoryPath: String
    ) throws(ISOBuilderError) -> (Int32, String) {
        var lastError: Int32 = EEXIST
        for _ in 0..<attempts {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            // Keep within NAME_MAX (255) even for long destination names.
            let temporaryName =
                name.utf8.count <= 200 ? ".\(name).tmp-\(getpid())-\(suffix)" : ".tmp-\(getpid())-\(suffix)"
            let file = openat(directory, temporaryName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if file >= 0 { return (file, temporaryName) }
            lastError = errno
            if lastError != EEXIST { break }
        }
        throw .system("openat", errno: lastError, path: directoryPath, what: "create a temporary file for the image")
    }

    /// Writes all of `bytes`, retrying short writes and `EINTR`.
    private static func writeAll(_ bytes: [UInt8], to file: Int32, path: String) throws(ISOBuilderError) {
        var failure: Int32?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = posixWrite(file, buffer.baseAddress! + offset, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += count
            }
        }
        if let failure {
            throw .system("write", errno: failure, path: path, what: "write the image")
        }
    }
}
