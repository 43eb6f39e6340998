#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - Directories and paths

extension AtomicFile {
    /// Opens a directory without following a symbolic link in its last component.
    ///
    /// Linux reports such a link as `ENOTDIR` (with `O_DIRECTORY`) or `ELOOP`; both become a
    /// ``AtomicFileError/Code/symbolicLink`` error when the path is indeed a link. The corresponding
    /// C function is `open` with `O_DIRECTORY | O_NOFOLLOW`.
    ///
    /// - Parameters:
    ///   - path: The directory.
    ///   - what: What the directory is opened for, for the error message.
    /// - Returns: The open descriptor, to be closed by the caller.
    /// - Throws: ``AtomicFileError`` naming the path.
    public static func openDirectoryNoFollow(_ path: String, for what: String) throws(AtomicFileError) -> Int32 {
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if directory >= 0 { return directory }
        let error = errno
        var status = stat()
        if error == ENOTDIR || error == ELOOP, lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK {
            throw AtomicFileError(
                .symbolicLink, "cannot \(what): '\(path)' is a symbolic link, which is never followed", path: path,
                call: "open", errno: error)
        }
        throw .system("open", errno: error, path: path, what: what)
    }

    /// Splits `path` into its directory (`.` when there is none) and a plain last component.
    static func split(_ path: String) throws(AtomicFileError) -> (directory: String, name: String) {
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw AtomicFileError(
                .invalidPath, "the output path \(String(reflecting: path)) is empty or contains NUL", path: path)
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
            throw AtomicFileError(.invalidPath, "the output path '\(path)' does not name a file", path: path)
        }
        return (directory, name)
    }

    /// The name of a new temporary file for the destination `name`: hidden (a leading `.`), never
    /// ending like the destination (readers such as node_exporter match on the extension), unique
    /// per process and call (PID and 64 random bits), within `NAME_MAX`.
    /// - Parameter name: The destination's last path component.
    /// - Returns: A fresh name in the same directory.
    public static func temporaryName(for name: String) -> String {
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return name.utf8.count <= 200 ? ".\(name).tmp-\(getpid())-\(suffix)" : ".tmp-\(getpid())-\(suffix)"
    }

    /// Whether `name` is one of ``temporaryName(for:)``'s names (of any destination).
    /// - Parameter name: A last path component.
    /// - Returns: `true` for a temporary file of an atomic write, finished or abandoned.
    public static func isTemporaryName(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp-")
    }
}
