#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - AtomicFileError

/// Why an atomic write (or a flush) failed: what was being done, the call, the path and `errno`.
public struct AtomicFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Code: Sendable, Hashable {
        /// The path is empty, contains NUL, or does not name a file.
        case invalidPath
        /// The destination or its directory is a symbolic link, which is never followed or replaced.
        case symbolicLink
        /// The destination exists and is not a regular file.
        case notRegularFile
        /// A system call failed; see ``call`` and ``errno``.
        case systemCall
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence saying what went wrong.
    public var message: String
    /// The file system path concerned.
    public var path: String
    /// The C function that failed, for ``Code/systemCall`` (and a symbolic link found by one).
    public var call: String?
    /// `errno` right after the failed call, when a call failed.
    public var errno: Int32?

    /// Creates an error.
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: A sentence saying what went wrong.
    ///   - path: The path concerned.
    ///   - call: The C function that failed, if any.
    ///   - errno: `errno` after it, if any.
    public init(_ code: Code, _ message: String, path: String, call: String? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.call = call
        self.errno = errno
    }

    /// An error for a failed system call, with `errno`'s text read at the failure site. `ELOOP`
    /// (a symbolic link met with `O_NOFOLLOW`) becomes ``Code/symbolicLink``.
    /// - Parameters:
    ///   - call: The C function that failed, e.g. `"openat"`.
    ///   - value: The `errno` value read right after the failure.
    ///   - path: The path concerned.
    ///   - what: What was being done, e.g. `"create the temporary file"`.
    /// - Returns: The error.
    public static func system(_ call: String, errno value: Int32, path: String, what: String) -> AtomicFileError {
        let reason = String(cString: strerror(value))
        if value == ELOOP {
            return AtomicFileError(
                .symbolicLink,
                "cannot \(what): '\(path)' is a symbolic link, which is never followed (\(call): \(reason))",
                path: path, call: call, errno: value)
        }
        return AtomicFileError(
            .systemCall, "cannot \(what): \(call) failed: \(reason) (errno \(value))", path: path, call: call,
            errno: value)
    }

    /// The message, followed by the path when the message does not already name it.
    public var description: String {
        message.contains(path) ? message : "\(message) (path: \(path))"
    }
}
