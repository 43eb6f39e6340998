import AtomicFile

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - ISOBuilderError

/// The one error type of the ISOBuilder layer.
///
/// Every failure of validation, of reading a directory, of libisofs, or of writing the image file is
/// reported as an `ISOBuilderError` with a ``Code`` to match on, a human-readable ``message`` that
/// names the limit or the offending value, and the ``path`` it concerns where there is one.
///
/// ```swift
/// do {
///     try builder.writeImage(image, to: "/var/lib/recontextd/vm1-context.iso", mode: 0o640)
/// } catch let error where error.code == .imageTooLarge {
///     logger.error("\(error)")
/// }
/// ```
public struct ISOBuilderError: Error, Sendable, Hashable, CustomStringConvertible {
    // MARK: - Code

    /// What kind of failure an ``ISOBuilderError`` is.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The volume id is empty, longer than 32 bytes, or has characters other than printable ASCII.
        case invalidVolumeID
        /// A path is empty, absolute, contains `.`/`..` or empty components, or a NUL byte.
        case invalidPath
        /// A name contains a character that Joliet cannot carry unchanged (control characters,
        /// `*`, `:`, `;`, `?`, `\`), or a name read from disk is not valid UTF-8.
        case invalidName
        /// A single name is longer than Rock Ridge (255 bytes) or Joliet (64 UTF-16 units) allow.
        case nameTooLong
        /// A whole path is longer than the Joliet tree allows (240 bytes of UCS-2 with separators).
        case pathTooLong
        /// The same path appears twice among the entries.
        case duplicatePath
        /// A path is used both as a file and as a directory (explicitly or as a parent of others).
        case pathConflict
        /// A mode has bits outside the permission bits `0o7777`.
        case invalidMode
        /// The modification time (given, or from `SOURCE_DATE_EPOCH`) is malformed or out of range.
        case invalidModificationTime
        /// The inputs or the produced image exceed the configured size limit.
        case imageTooLarge
        /// A symbolic link was met where none is followed (input directory or output path).
        case symbolicLink
        /// A directory holds something other than regular files and directories (device, FIFO, socket),
        /// or the output path names a directory.
        case unsupportedFileType
        /// A system call failed; ``ISOBuilderError/systemErrno`` has the `errno`.
        case systemCall
        /// libisofs reported an error; ``ISOBuilderError/libisofsStatus`` has its (negative) code.
        case libisofs
    }

    // MARK: - Properties

    /// What kind of failure this is.
    public var code: Code
    /// A sentence saying what went wrong, naming the limit, the size or the offending value.
    public var message: String
    /// The image path (inside the image) or file system path the error concerns, if any.
    public var path: String?
    /// The `errno` value for ``Code/systemCall`` (and a few file-system-related codes), else `nil`.
    public var systemErrno: Int32?
    /// The negative libisofs return code for ``Code/libisofs``, else `nil`.
    public var libisofsStatus: Int32?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: A sentence saying what went wrong.
    ///   - path: The path concerned, if any.
    ///   - systemErrno: The `errno` of a failed system call, if any.
    ///   - libisofsStatus: The libisofs return code, if any.
    public init(
        code: Code,
        message: String,
        path: String? = nil,
        systemErrno: Int32? = nil,
        libisofsStatus: Int32? = nil
    ) {
        self.code = code
        self.message = message
        self.path = path
        self.systemErrno = systemErrno
        self.libisofsStatus = libisofsStatus
    }

    // MARK: - Classification

    /// Whether retrying the same operation later may succeed.
    ///
    /// True for resource shortages and interrupted or busy system calls (out of memory, no space,
    /// too many open files, I/O errors) and for libisofs running out of memory or threads; false for
    /// everything that depends only on the input (validation, symbolic links, size limits).
    public var isTransient: Bool {
        switch code {
        case .systemCall:
            guard let systemErrno else { return false }
            return [EINTR, EAGAIN, EBUSY, ENOMEM, ENOSPC, EDQUOT, EIO, EMFILE, ENFILE].contains(systemErrno)
        case .libisofs:
            return libisofsStatus == Self.libisofsOutOfMemory || libisofsStatus == Self.libisofsThreadError
        default:
            return false
        }
    }

    /// `ISO_OUT_OF_MEM` as a signed return code.
    static let libisofsOutOfMemory = Int32(bitPattern: 0xF030_FFFA)
    /// `ISO_THREAD_ERROR` as a signed return code.
    static let libisofsThreadError = Int32(bitPattern: 0xF030_FFF7)

    // MARK: - CustomStringConvertible

    /// The message, prefixed by the code and followed by the path when the message does not already
    /// contain it.
    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let path, !message.contains(path) {
            text += " (path: \(path))"
        }
        return text
    }
}

// MARK: - Factories

extension ISOBuilderError {
    /// An error for a failed system call, reading `errno` text at the failure site.
    ///
    /// - Parameters:
    ///   - call: The C function that failed, e.g. `"openat"`.
    ///   - errno: The `errno` value read right after the failure.
    ///   - path: The file system path concerned.
    ///   - what: What was being done, e.g. `"create the temporary file"`.
    static func system(_ call: String, errno value: Int32, path: String?, what: String) -> ISOBuilderError {
        var error = ISOBuilderError(AtomicFileError.system(call, errno: value, path: path ?? "", what: what))
        error.path = path
        return error
    }
}
