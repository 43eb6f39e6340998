import FoundationEssentials
import RecontextConfiguration

#if canImport(Glibc)
    import Glibc
#endif

/// libvirt's `qemu` hook (`/etc/libvirt/hooks/qemu DOMAIN OPERATION SUBOP EXTRA`, domain XML on
/// standard input): makes an incoming domain's context CD-ROM startable when its image is missing
/// on this host, as it is after a live migration when the image directory is host-local.
///
/// libvirt runs the hook synchronously for every operation of every domain. Only two operations
/// let the hook change the XML QEMU starts with, and only those are handled:
/// - `migrate begin` (on the destination, before the incoming QEMU starts);
/// - `restore begin` (`virsh restore`, or `virsh start` of a domain with a managed save image: the
///   saved XML may name an image this host has since collected).
/// Every other call returns at once: no output, exit 0, standard input unread (libvirt ignores a
/// hook that closes its input early).
///
/// For those two, the hook loads the configuration with the daemon's loader and passes the XML
/// through ``HookCDROMRewriter``: an image missing from the image directory is removed from its
/// CD-ROM (empty drive); the daemon inserts this host's image when the VM has arrived (it rebuilds
/// on RESUMED/MIGRATED and STARTED/RESTORED). No output keeps libvirt's XML.
///
/// The rule for failures: the hook fails (non-zero exit, and libvirt cancels the operation with
/// the hook's standard error) only when it can tell the domain would not start here anyway
/// because of one of our images, and says why. Anything that keeps it from doing its job
/// otherwise (no or an invalid configuration, unreadable input) makes it step aside: a warning on
/// standard error, no output, exit 0, libvirt proceeds with its own XML, exactly as without the
/// hook. A broken `recontextd.yaml` must not stop every migration on the host, most of which
/// are of VMs recontextd does not manage; the ones it does manage then fail (or not) as they would
/// with no hook installed, and libvirt's own error names the missing file.
///
/// - Important: The hook must never call back into libvirt (libvirtd waits for it); it does not.
public struct QemuHook: Sendable {
    /// The most domain XML read from standard input (16 MiB; libvirt's are a few tens of KiB).
    public static let maximumInputBytes = 16 << 20

    /// The arguments libvirt passes.
    public struct Invocation: Sendable, Hashable {
        /// The domain's name.
        public var domain: String
        /// The operation: `prepare`, `start`, `started`, `stopped`, `release`, `migrate`, `restore`,
        /// `reconnect`, `attach`.
        public var operation: String
        /// The sub-operation: `begin`, `end`, `-`.
        public var subOperation: String
        /// The extra argument (usually `-`).
        public var extra: String

        /// Creates an invocation.
        public init(domain: String, operation: String, subOperation: String, extra: String = "-") {
            self.domain = domain
            self.operation = operation
            self.subOperation = subOperation
            self.extra = extra
        }

        /// Whether the hook acts on this call: `migrate begin` or `restore begin`.
        public var rewritesXML: Bool {
            subOperation == "begin" && (operation == "migrate" || operation == "restore")
        }
    }

    /// What to print and how to exit.
    public struct Outcome: Sendable {
        /// Bytes for standard output: the new domain XML, or empty to keep libvirt's.
        public var standardOutput: [UInt8] = []
        /// Lines for standard error (and the system log), each a full sentence.
        public var messages: [Message] = []
        /// The exit status: 0, or 1 to make libvirt cancel the operation.
        public var exitStatus: Int32 = 0
    }

    /// One line for standard error.
    public struct Message: Sendable, Hashable, CustomStringConvertible {
        /// How bad it is.
        public enum Severity: String, Sendable, Hashable {
            /// What the hook changed.
            case notice
            /// Something an operator should fix; the hook stepped aside or left a disk alone.
            case warning
            /// Why the operation is cancelled.
            case error
        }

        /// How bad it is.
        public var severity: Severity
        /// The text, starting with the domain and the operation.
        public var text: String

        public var description: String {
            "recontextd hook: \(severity == .notice ? "" : "\(severity.rawValue): ")\(text)"
        }
    }

    /// The configuration file.
    public var configurationPath: String
    /// Whether a path exists on this host (``HookFileState/probe(_:)``; tests fake it).
    public var fileState: @Sendable (String) -> HookFileState

    /// Creates the hook.
    /// - Parameters:
    ///   - configurationPath: The daemon's configuration file.
    ///   - fileState: How to learn whether an image exists.
    public init(
        configurationPath: String = DaemonConfiguration.defaultPath,
        fileState: @escaping @Sendable (String) -> HookFileState = HookFileState.probe
    ) {
        self.configurationPath = configurationPath
        self.fileState = fileState
    }

    /// Handles one call.
    /// - Parameters:
    ///   - invocation: libvirt's arguments.
    ///   - readInput: Reads standard input (called only for `migrate begin` and `restore begin`);
    ///     returns the bytes and whether they are complete (not cut at the limit).
    /// - Returns: What to print and the exit status.
    public func run(_ invocation: Invocation, readInput: () throws -> (bytes: [UInt8], complete: Bool)) -> Outcome {
        guard invocation.rewritesXML else { return Outcome() }
        let call = "\(invocation.domain): \(invocation.operation) \(invocation.subOperation)"
        var outcome = Outcome()

        let configuration: DaemonConfiguration
        do {
            configuration = try DaemonOptions(configurationPath: configurationPath).loadConfiguration()
        } catch {
            outcome.messages.append(
                Message(
                    severity: .warning,
                    text:
                        "\(call): configuration unusable, domain XML left unchanged (a missing context image fails as without the hook): "
                        + error.problems.map(\.description).joined(separator: "; ")))
            return outcome
        }

        let input: (bytes: [UInt8], complete: Bool)
        do {
            input = try readInput()
        } catch {
            outcome.messages.append(
                Message(
                    severity: .warning,
                    text: "\(call): cannot read the domain XML from standard input (\(error)); left unchanged"))
            return outcome
        }

        let rewriter = HookCDROMRewriter(imageDirectory: configuration.images.directory, fileState: fileState)
        do {
            let rewrite = try rewriter.rewrite(input.bytes, domain: invocation.domain, complete: input.complete)
            outcome.messages += rewrite.warnings.map { Message(severity: .warning, text: "\(call): \($0)") }
            if let xml = rewrite.xml {
                outcome.standardOutput = xml
                outcome.messages += rewrite.removed.map {
                    Message(
                        severity: .notice,
                        text:
                            "\(call): \($0) is missing on this host; source removed (empty drive until recontextd inserts this host's image)"
                    )
                }
            }
        } catch {
            outcome.messages.append(Message(severity: .error, text: "\(call): \(error.message)"))
            outcome.exitStatus = 1
        }
        return outcome
    }
}

// MARK: - Standard input

extension QemuHook {
    /// A failure to read standard input.
    public struct InputError: Error, Sendable, CustomStringConvertible {
        /// `strerror` of the `read` failure.
        public var message: String
        public var description: String { message }
    }

    /// Reads file descriptor `fd` to its end, or to `limit` bytes.
    /// The corresponding C function is `read`.
    /// - Returns: The bytes, and false for `complete` when more than `limit` were available.
    /// - Throws: ``InputError`` when `read` fails.
    public static func readAll(fd: Int32 = 0, limit: Int = maximumInputBytes) throws(InputError) -> (
        bytes: [UInt8], complete: Bool
    ) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw InputError(message: String(cString: strerror(code)))
            }
            if count == 0 { return (bytes, true) }
            bytes += chunk[0..<count]
            if bytes.count > limit { return (Array(bytes[0..<limit]), false) }
        }
    }
}
