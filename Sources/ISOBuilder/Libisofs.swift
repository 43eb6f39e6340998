internal import CLibisofs
import Threads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - Libisofs

/// The one way into libisofs: a process-wide lock, lazy initialisation, and the error funnel.
///
/// libisofs keeps unsynchronised global state (its message queue, serial numbers of memory streams,
/// the local charset): helgrind found 91 races with two threads building at once and none with a
/// lock around each build. So every use of libisofs, from `iso_init` to freeing the
/// burn source (which joins the writer thread libisofs starts), happens inside ``withLibrary(_:)``.
enum Libisofs {
    /// State guarded by the lock.
    struct State {
        /// Whether `iso_init` has succeeded in this process.
        var initialized = false
    }

    /// The process-wide lock around every libisofs call.
    private static let state = PthreadLock(State())

    /// Runs `body` with exclusive access to libisofs, initialising it on first use.
    ///
    /// Queued libisofs messages are discarded afterwards so the queue never grows.
    ///
    /// - Parameter body: The libisofs work; it must not escape any libisofs pointer.
    /// - Throws: ``ISOBuilderError`` from initialisation or from `body`.
    static func withLibrary<Result>(
        _ body: () throws(ISOBuilderError) -> Result
    ) throws(ISOBuilderError) -> Result {
        try state.withLock { (state: inout State) throws(ISOBuilderError) -> Result in
            if !state.initialized {
                try initialize()
                state.initialized = true
            }
            defer { discardMessages() }
            return try body()
        }
    }

    /// `iso_init` and the process-wide settings, under the lock.
    private static func initialize() throws(ISOBuilderError) {
        // bit0: do not call setlocale() from the LC_* environment; a library must not change the
        // process locale. Names are then declared UTF-8 explicitly below.
        try check(iso_init_with_flag(1), "initialise libisofs (iso_init)")
        var utf8 = Array("UTF-8".utf8CString)
        guard iso_set_local_charset(&utf8, 0) > 0 else {
            throw ISOBuilderError(code: .libisofs, message: "libisofs refused UTF-8 as the local character set")
        }
        // Queue problems (so errors can quote them) but never print to stderr: a daemon logs itself.
        var queue = Array("SORRY".utf8CString)
        var print = Array("NEVER".utf8CString)
        var id = Array("libisofs: ".utf8CString)
        _ = iso_set_msgs_severities(&queue, &print, &id)
    }

    // MARK: - Errors

    /// Throws a ``ISOBuilderError/Code/libisofs`` error when `status` is negative.
    ///
    /// - Parameters:
    ///   - status: A libisofs return value; negative values are errors.
    ///   - step: What was being done, e.g. `"add file"`.
    ///   - path: The image path concerned, if any.
    /// - Returns: `status` when it is not an error.
    @discardableResult
    static func check(_ status: Int32, _ step: String, path: String? = nil) throws(ISOBuilderError) -> Int32 {
        guard status < 0 else { return status }
        throw error(status: status, step: step, path: path)
    }

    /// Builds the error for a negative libisofs status, with `iso_error_to_msg` text and any queued
    /// libisofs messages (read now, inside the failing call's lock scope).
    static func error(status: Int32, step: String, path: String?) -> ISOBuilderError {
        let text = iso_error_to_msg(status).map { String(cString: $0) } ?? "unknown error"
        var message =
            "libisofs failed to \(step): \(text) (0x\(String(UInt32(bitPattern: status), radix: 16, uppercase: true)))"
        let details = takeMessages()
        if !details.isEmpty {
            message += "; libisofs said: " + details.joined(separator: "; ")
        }
        return ISOBuilderError(code: .libisofs, message: message, path: path, libisofsStatus: status)
    }

    /// Reads and removes the queued libisofs messages of severity SORRY or worse.
    static func takeMessages() -> [String] {
        var messages: [String] = []
        var minimum = Array("SORRY".utf8CString)
        var text = [CChar](repeating: 0, count: Int(ISO_MSGS_MESSAGE_LEN))
        var severity = [CChar](repeating: 0, count: 80)
        var code: Int32 = 0
        var imageID: Int32 = 0
        while messages.count < 8, iso_obtain_msgs(&minimum, &code, &imageID, &text, &severity) > 0 {
            messages.append("\(string(severity)): \(string(text))")
        }
        return messages
    }

    /// The text of a NUL-terminated C character buffer.
    private static func string(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Empties the libisofs message queue.
    private static func discardMessages() {
        var never = Array("NEVER".utf8CString)
        var text = [CChar](repeating: 0, count: Int(ISO_MSGS_MESSAGE_LEN))
        var severity = [CChar](repeating: 0, count: 80)
        var code: Int32 = 0
        var imageID: Int32 = 0
        _ = iso_obtain_msgs(&never, &code, &imageID, &text, &severity)
    }
}
