import AtomicFile

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - AtomicFileWriter

/// Images written with ``AtomicFile`` (the one atomic-file helper of the package), its errors as
/// ``ISOBuilderError``s.
enum AtomicFileWriter {
    /// Where a test may make ``write(_:to:mode:group:durable:failingAt:)`` fail after the temporary
    /// file exists.
    typealias FailurePoint = AtomicFile.FailurePoint

    /// Writes `bytes` atomically to `path` (``AtomicFile/write(_:to:mode:group:durable:label:)``).
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
        do {
            return try AtomicFile.write(
                bytes, to: path, mode: mode, group: group, durable: durable, label: "image", failingAt: failurePoint)
        } catch {
            throw ISOBuilderError(error)
        }
    }

    /// Makes a file written with `durable: false` survive a power loss (``AtomicFile/makeDurable(_:label:)``).
    /// - Throws: ``ISOBuilderError`` naming the path and the failed call.
    static func makeDurable(_ path: String) throws(ISOBuilderError) {
        do { try AtomicFile.makeDurable(path, label: "image") } catch { throw ISOBuilderError(error) }
    }
}

// MARK: - From AtomicFileError

extension ISOBuilderError {
    /// The same failure in this layer's terms: the message, path and `errno` kept.
    /// - Parameter error: A failure of ``AtomicFile``.
    init(_ error: AtomicFileError) {
        let code: Code =
            switch error.code {
            case .invalidPath: .invalidPath
            case .symbolicLink: .symbolicLink
            case .notRegularFile: .unsupportedFileType
            case .systemCall: .systemCall
            }
        self.init(code: code, message: error.message, path: error.path, systemErrno: error.errno)
    }
}
