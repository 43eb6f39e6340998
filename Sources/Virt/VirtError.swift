internal import CLibvirt

#if canImport(Glibc)
    import Glibc
#endif

/// An error reported by libvirt, copied at the failure site.
///
/// libvirt keeps its last error in thread-local storage, so every wrapper reads it in the same
/// synchronous call that failed (see ``LibvirtCall``), before any suspension point could move the
/// task to another thread.
public struct VirtError: Error, Sendable, Hashable, CustomStringConvertible {
    /// libvirt's error code (`virErrorNumber`), e.g. 42 for `VIR_ERR_NO_DOMAIN`.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The numeric `virErrorNumber`.
        public var rawValue: Int32
        /// Wraps a numeric `virErrorNumber`.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `VIR_ERR_OK`: no error was recorded (the call failed without saying why).
        public static let ok = Code(rawValue: Int32(VIR_ERR_OK.rawValue))
        /// `VIR_ERR_INTERNAL_ERROR`.
        public static let internalError = Code(rawValue: Int32(VIR_ERR_INTERNAL_ERROR.rawValue))
        /// `VIR_ERR_NO_SUPPORT`: the driver does not implement the function.
        public static let noSupport = Code(rawValue: Int32(VIR_ERR_NO_SUPPORT.rawValue))
        /// `VIR_ERR_NO_CONNECT`: no connection driver for the URI.
        public static let noConnect = Code(rawValue: Int32(VIR_ERR_NO_CONNECT.rawValue))
        /// `VIR_ERR_INVALID_CONN`.
        public static let invalidConnection = Code(rawValue: Int32(VIR_ERR_INVALID_CONN.rawValue))
        /// `VIR_ERR_OPERATION_FAILED`.
        public static let operationFailed = Code(rawValue: Int32(VIR_ERR_OPERATION_FAILED.rawValue))
        /// `VIR_ERR_OPERATION_INVALID`: e.g. the domain is not running.
        public static let operationInvalid = Code(rawValue: Int32(VIR_ERR_OPERATION_INVALID.rawValue))
        /// `VIR_ERR_OPERATION_UNSUPPORTED`: e.g. a bus that does not support hotplug.
        public static let operationUnsupported = Code(rawValue: Int32(VIR_ERR_OPERATION_UNSUPPORTED.rawValue))
        /// `VIR_ERR_OPERATION_TIMEOUT`.
        public static let operationTimeout = Code(rawValue: Int32(VIR_ERR_OPERATION_TIMEOUT.rawValue))
        /// `VIR_ERR_OPERATION_ABORTED`.
        public static let operationAborted = Code(rawValue: Int32(VIR_ERR_OPERATION_ABORTED.rawValue))
        /// `VIR_ERR_NO_DOMAIN`: no domain with that name or UUID.
        public static let noDomain = Code(rawValue: Int32(VIR_ERR_NO_DOMAIN.rawValue))
        /// `VIR_ERR_NO_DOMAIN_METADATA`: the domain has no metadata in that namespace.
        public static let noDomainMetadata = Code(rawValue: Int32(VIR_ERR_NO_DOMAIN_METADATA.rawValue))
        /// `VIR_ERR_XML_ERROR` / `VIR_ERR_XML_DETAIL`: malformed XML.
        public static let xmlError = Code(rawValue: Int32(VIR_ERR_XML_ERROR.rawValue))
        /// `VIR_ERR_XML_DETAIL`.
        public static let xmlDetail = Code(rawValue: Int32(VIR_ERR_XML_DETAIL.rawValue))
        /// `VIR_ERR_CONFIG_UNSUPPORTED`.
        public static let configUnsupported = Code(rawValue: Int32(VIR_ERR_CONFIG_UNSUPPORTED.rawValue))
        /// `VIR_ERR_INVALID_ARG`.
        public static let invalidArgument = Code(rawValue: Int32(VIR_ERR_INVALID_ARG.rawValue))
        /// `VIR_ERR_SYSTEM_ERROR`: a system call failed (e.g. the socket is gone).
        public static let systemError = Code(rawValue: Int32(VIR_ERR_SYSTEM_ERROR.rawValue))
        /// `VIR_ERR_RPC`.
        public static let rpc = Code(rawValue: Int32(VIR_ERR_RPC.rawValue))
        /// `VIR_ERR_AUTH_FAILED`.
        public static let authFailed = Code(rawValue: Int32(VIR_ERR_AUTH_FAILED.rawValue))
        /// `VIR_ERR_AGENT_UNRESPONSIVE`.
        public static let agentUnresponsive = Code(rawValue: Int32(VIR_ERR_AGENT_UNRESPONSIVE.rawValue))
        /// `VIR_ERR_NO_SOURCE`.
        public static let noSource = Code(rawValue: Int32(VIR_ERR_NO_SOURCE.rawValue))
        /// `VIR_ERR_DEVICE_MISSING`: the device is not in the domain.
        public static let deviceMissing = Code(rawValue: Int32(VIR_ERR_DEVICE_MISSING.rawValue))

        public var description: String { "\(rawValue)" }
    }

    /// libvirt's code for what failed.
    public var code: Code
    /// libvirt's `virErrorDomain`: which part of libvirt raised it (e.g. 10 for QEMU).
    public var errorDomain: Int32
    /// libvirt's message, or a description of the call when libvirt recorded none.
    public var message: String
    /// The wrapper operation that failed, e.g. `virDomainUpdateDeviceFlags`.
    public var operation: String

    /// Creates an error; normally made by ``LibvirtCall`` from libvirt's last error.
    public init(code: Code, errorDomain: Int32 = 0, message: String, operation: String) {
        self.code = code
        self.errorDomain = errorDomain
        self.message = message
        self.operation = operation
    }

    /// True when retrying later may succeed: the connection was lost, an operation timed out,
    /// the RPC layer failed, or a job on the domain was still running.
    public var isTransient: Bool {
        switch code {
        case .invalidConnection, .operationTimeout, .systemError, .rpc, .agentUnresponsive,
            .noConnect:
            return true
        case .operationFailed:
            // "cannot acquire state change lock" and similar busy-job failures, and a tray the
            // guest kept locked ("timed out waiting to open tray").
            return message.contains("lock") || message.contains("job") || mentionsTray
        case .internalError:
            // QEMU refusing a media step because the tray is in the wrong state right after a
            // SCSI VM arrived by migration, although libvirt had forced the tray open. Seen in CI
            // as "...'blockdev-remove-medium': Tray of device 'scsi0-0-0-0' is not open" and
            // "...'blockdev-insert-medium': Tray of the device is not open". A retry usually
            // finds it open; the pipeline replaces a SCSI drive whose tray stays shut.
            return mentionsTray
        default:
            return false
        }
    }

    /// The message names the tray, in either case ("Tray of ..." from QEMU, "open tray" from libvirt):
    /// a media step refused because the tray was shut (or would not open).
    public var mentionsTray: Bool {
        message.lowercased().contains("tray")
    }

    /// True when the domain no longer exists on this connection.
    public var isNoDomain: Bool { code == .noDomain }

    /// True when the driver or the device's bus does not support what was asked.
    public var isUnsupported: Bool {
        code == .noSupport || code == .operationUnsupported || code == .configUnsupported
    }

    public var description: String {
        "\(operation): \(message) (libvirt error \(code.rawValue), domain \(errorDomain))"
    }
}

// MARK: - The funnel every raw call goes through

/// Runs raw libvirt calls and turns failures into ``VirtError`` read on the failing thread.
enum LibvirtCall {
    /// Reads and clears libvirt's thread-local last error.
    ///
    /// The corresponding C functions are `virGetLastError` and `virResetLastError`.
    static func lastError(operation: String) -> VirtError {
        guard let err = virGetLastError() else {
            return VirtError(code: .ok, message: "\(operation) failed without an error", operation: operation)
        }
        let message = err.pointee.message.map { String(cString: $0) } ?? "unknown error"
        let error = VirtError(
            code: .init(rawValue: err.pointee.code),
            errorDomain: err.pointee.domain,
            message: message,
            operation: operation
        )
        virResetLastError()
        return error
    }

    /// Calls `body`; a negative result is a failure.
    @discardableResult
    static func int(_ operation: String, _ body: () -> Int32) throws(VirtError) -> Int32 {
        virResetLastError()
        let rc = body()
        if rc < 0 { throw lastError(operation: operation) }
        return rc
    }

    /// Calls `body`; a `nil` result is a failure.
    static func pointer<T>(_ operation: String, _ body: () -> T?) throws(VirtError) -> T {
        virResetLastError()
        guard let value = body() else { throw lastError(operation: operation) }
        return value
    }

    /// Calls `body`, which returns a malloc'ed C string that is copied and freed.
    static func string(_ operation: String, _ body: () -> UnsafeMutablePointer<CChar>?) throws(VirtError) -> String {
        let raw = try pointer(operation, body)
        defer { free(raw) }
        return String(cString: raw)
    }
}
