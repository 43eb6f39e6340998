#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - AtomicFile

/// The one way recontextd writes a file: it appears only when complete, and two writers of the same
/// file never share a temporary name.
///
/// Steps: a new temporary file beside the destination (``temporaryName(for:)``, created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600), `write`, `fchown` (when a group is given), `fchmod`,
/// `fsync`, `renameat` over the destination, `fsync` of the directory. Never follows a symbolic
/// link: not at the destination, not in the directory's last component. On failure the temporary
/// file is removed and the destination is as it was; after a crash the destination is the old file
/// or the new one, whole, and a hidden temporary file may be left (collectors recognise it with
/// ``isTemporaryName(_:)``). Of two concurrent writers, the last rename wins; neither fails for
/// the other.
///
/// The two `fsync`s can be left for later (`durable: false`, then ``makeDurable(_:)``): the file
/// still appears only when complete (its bytes are written before the rename, and every reader sees
/// them through the page cache, also after the writer is killed); only its survival of a power loss
/// waits for ``makeDurable(_:)``.
///
/// - Important: Every call blocks the calling thread (two `fsync`s); call it off the cooperative
///   thread pool when it matters.
public enum AtomicFile {
    /// Where a test may interrupt ``write(_:to:mode:group:durable:label:failingAt:beforeRename:)``.
    package enum FailurePoint: Sendable {
        /// After the bytes are written, before `fchmod`: fails with `EIO`.
        case afterWrite
        /// Just before `renameat`: fails with `EIO`.
        case beforeRename
    }

    /// How many temporary names to try when one is taken.
    private static let attempts = 16

    /// Writes `bytes` atomically to `path`.
    ///
    /// - Parameters:
    ///   - bytes: The complete contents.
    ///   - path: The destination; its parent directory must exist and is opened with `O_NOFOLLOW`.
    ///   - mode: Permission bits of the new file.
    ///   - group: A group id to `fchown` the file to, or `nil`.
    ///   - durable: `fsync` the file before the rename and the directory after it; when `false`,
    ///     call ``makeDurable(_:)`` before anything that must survive a power loss refers to the file.
    ///   - label: What the file is, for error messages (`"file"`, `"image"`, `"status file"`).
    /// - Returns: `bytes.count`.
    /// - Throws: ``AtomicFileError`` naming the step, the path and `errno`.
    @discardableResult
    public static func write(
        _ bytes: [UInt8], to path: String, mode: mode_t, group: gid_t? = nil, durable: Bool = true,
        label: String = "file"
    ) throws(AtomicFileError) -> Int {
        try write(bytes, to: path, mode: mode, group: group, durable: durable, label: label, failingAt: nil)
    }

    /// ``write(_:to:mode:group:durable:label:)`` with the test hooks.
    /// - Parameters:
    ///   - failurePoint: Fail with `EIO` at this point.
    ///   - beforeRename: Called with the temporary file's path once it is complete (written, with its
    ///     mode, flushed) and before the rename: the state a crash at that point leaves on disk.
    package static func write(
        _ bytes: [UInt8], to path: String, mode: mode_t, group: gid_t?, durable: Bool, label: String,
        failingAt failurePoint: FailurePoint?, beforeRename: ((String) -> Void)? = nil
    ) throws(AtomicFileError) -> Int {
        let (directoryPath, name) = try split(path)
        let directory = try openDirectoryNoFollow(directoryPath, for: "open the destination directory")
        defer { close(directory) }
        try checkDestination(directory: directory, name: name, path: path)

        let (file, temporaryName) = try createTemporaryFile(
            in: directory, for: name, directoryPath: directoryPath, label: label)
        var fileOpen = true
        var renamed = false
        defer {
            if fileOpen { close(file) }
            if !renamed { unlinkat(directory, temporaryName, 0) }
        }
        let temporaryPath = directoryPath == "/" ? "/" + temporaryName : directoryPath + "/" + temporaryName

        try writeAll(bytes, to: file, path: temporaryPath, label: label)
        if failurePoint == .afterWrite {
            throw .system("write", errno: EIO, path: temporaryPath, what: "write the \(label) (injected failure)")
        }
        if let group, fchown(file, uid_t.max, group) != 0 { // uid_t.max is (uid_t)-1: keep the owner
            throw .system("fchown", errno: errno, path: temporaryPath, what: "give the \(label) group \(group)")
        }
        // After fchown, which may clear set-id bits.
        guard fchmod(file, mode) == 0 else {
            throw .system("fchmod", errno: errno, path: temporaryPath, what: "set mode 0o\(String(mode, radix: 8))")
        }
        if durable, fsync(file) != 0 {
            throw .system("fsync", errno: errno, path: temporaryPath, what: "flush the \(label) to disk")
        }
        fileOpen = false
        guard close(file) == 0 else {
            throw .system("close", errno: errno, path: temporaryPath, what: "close the \(label)")
        }
        beforeRename?(temporaryPath)
        if failurePoint == .beforeRename {
            throw .system("renameat", errno: EIO, path: path, what: "move the \(label) into place (injected failure)")
        }
        guard renameat(directory, temporaryName, directory, name) == 0 else {
            throw .system("renameat", errno: errno, path: path, what: "move the \(label) into place")
        }
        renamed = true
        guard !durable || fsync(directory) == 0 else {
            // The new file is already in place; only its durability across a crash is in doubt.
            throw .system(
                "fsync", errno: errno, path: directoryPath,
                what: "flush the directory after moving the new \(label) into place at '\(path)'")
        }
        return bytes.count
    }

    /// Makes a file written with `durable: false` survive a power loss: `fsync` of the file, then
    /// of its directory (which holds the rename). Never follows a symbolic link.
    /// - Parameters:
    ///   - path: The file.
    ///   - label: What the file is, for error messages.
    /// - Throws: ``AtomicFileError`` naming the path and the failed call.
    public static func makeDurable(_ path: String, label: String = "file") throws(AtomicFileError) {
        let (directoryPath, name) = try split(path)
        let directory = try openDirectoryNoFollow(directoryPath, for: "open the \(label)'s directory")
        defer { close(directory) }
        let file = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else {
            throw .system("openat", errno: errno, path: path, what: "open the \(label) to flush it")
        }
        defer { close(file) }
        guard fsync(file) == 0 else {
            throw .system("fsync", errno: errno, path: path, what: "flush the \(label) to disk")
        }
        guard fsync(directory) == 0 else {
            throw .system("fsync", errno: errno, path: directoryPath, what: "flush the directory holding '\(path)'")
        }
    }

    // MARK: - Steps

    /// The destination, if it exists, must be a regular file: symbolic links and directories are refused.
    private static func checkDestination(directory: Int32, name: String, path: String) throws(AtomicFileError) {
        var status = stat()
        guard fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw .system("fstatat", errno: errno, path: path, what: "inspect the destination")
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG:
            return
        case S_IFLNK:
            throw AtomicFileError(
                .symbolicLink,
                "refusing to write '\(path)': it is a symbolic link, which is never followed or replaced",
                path: path)
        default:
            throw AtomicFileError(
                .notRegularFile, "refusing to write '\(path)': it exists and is not a regular file", path: path)
        }
    }

    /// Creates a new, empty, private temporary file next to the destination.
    private static func createTemporaryFile(
        in directory: Int32, for name: String, directoryPath: String, label: String
    ) throws(AtomicFileError) -> (Int32, String) {
        var lastError: Int32 = EEXIST
        for _ in 0..<attempts {
            let temporaryName = temporaryName(for: name)
            let file = openat(directory, temporaryName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if file >= 0 { return (file, temporaryName) }
            lastError = errno
            if lastError != EEXIST { break }
        }
        throw .system(
            "openat", errno: lastError, path: directoryPath, what: "create a temporary file for the \(label)")
    }

    /// Writes all of `bytes`, retrying short writes and `EINTR`.
    private static func writeAll(_ bytes: [UInt8], to file: Int32, path: String, label: String)
        throws(AtomicFileError)
    {
        var failure: Int32?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = Glibc.write(file, buffer.baseAddress! + offset, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += count
            }
        }
        if let failure {
            throw .system("write", errno: failure, path: path, what: "write the \(label)")
        }
    }
}
