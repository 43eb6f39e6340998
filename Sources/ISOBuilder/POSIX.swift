#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - POSIX helpers

/// The C function `read`, reachable from types that have a `read` method of their own.
func posixRead(_ file: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(file, buffer, count)
}

/// The C function `write`, reachable from types that have a `write` method of their own.
func posixWrite(_ file: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(file, buffer, count)
}

/// Opens a directory without following a symbolic link in its last component.
///
/// Linux reports such a link as `ENOTDIR` (with `O_DIRECTORY`) or `ELOOP`; both become a
/// ``ISOBuilderError/Code/symbolicLink`` error when the path is indeed a link.
///
/// - Parameters:
///   - path: The directory.
///   - what: What the directory is opened for, for the error message.
/// - Returns: The open descriptor, to be closed by the caller.
func openDirectoryNoFollow(_ path: String, for what: String) throws(ISOBuilderError) -> Int32 {
    let directory = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    if directory >= 0 { return directory }
    let error = errno
    var status = stat()
    if error == ENOTDIR || error == ELOOP, lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK {
        throw ISOBuilderError(
            code: .symbolicLink,
            message: "cannot \(what): '\(path)' is a symbolic link, which is never followed",
            path: path,
            systemErrno: error
        )
    }
    throw .system("open", errno: error, path: path, what: what)
}
