import AtomicFile

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

/// Opens a directory without following a symbolic link in its last component
/// (``AtomicFile/openDirectoryNoFollow(_:for:)``); such a link is a
/// ``ISOBuilderError/Code/symbolicLink`` error.
///
/// - Parameters:
///   - path: The directory.
///   - what: What the directory is opened for, for the error message.
/// - Returns: The open descriptor, to be closed by the caller.
func openDirectoryNoFollow(_ path: String, for what: String) throws(ISOBuilderError) -> Int32 {
    do { return try AtomicFile.openDirectoryNoFollow(path, for: what) } catch { throw ISOBuilderError(error) }
}
