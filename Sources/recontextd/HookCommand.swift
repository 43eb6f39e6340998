import ArgumentParser
import FoundationEssentials
import RecontextConfiguration
import RecontextCore
import RecontextDaemon
import RecontextHook

#if canImport(Glibc)
    import Glibc
#endif

/// `recontextd hook`: libvirt hook programs.
struct HookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hook",
        abstract: "libvirt hooks (run by libvirtd through systemd/libvirt-hook-qemu, not by hand).",
        subcommands: [HookQemuCommand.self])
}

/// `recontextd hook qemu DOMAIN OPERATION SUBOP EXTRA`: libvirt's `qemu` hook.
///
/// Installed through the `sh` front end `systemd/libvirt-hook-qemu` as `/etc/libvirt/hooks/qemu`
/// (or `/etc/libvirt/hooks/qemu.d/recontextd` next to another hook), which starts this program
/// only for `migrate begin` and `restore begin`. See ``QemuHook`` for what it does and when it
/// fails.
struct HookQemuCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu",
        abstract:
            "libvirt's qemu hook: on an incoming migration or restore, empty the context CD-ROMs whose image is missing here.",
        discussion: """
            Reads the domain XML on standard input for 'migrate begin' and 'restore begin' and prints it with the \
            <source> removed from every CD-ROM whose file lies directly in images.directory and is missing on \
            this host; prints nothing when nothing changes, and for every other operation. Exits non-zero \
            (libvirt cancels the operation) only when such a missing image cannot be helped \
            (startupPolicy='mandatory', or an unreadable XML naming it); an unusable configuration or input \
            is a warning and leaves the XML unchanged. Never calls libvirt.
            """)

    @Option(name: .customLong("config"), help: "The configuration file.")
    var configurationPath: String = DaemonConfiguration.defaultPath

    @Argument(help: "The domain's name.") var domain: String
    @Argument(help: "The operation (migrate, restore, prepare, start, ...).") var operation: String
    @Argument(help: "The sub-operation (begin, end, -).") var subOperation: String
    @Argument(help: "The extra argument (usually -).") var extra: String = "-"

    func run() throws {
        let invocation = QemuHook.Invocation(
            domain: domain, operation: operation, subOperation: subOperation, extra: extra)
        let outcome = QemuHook(configurationPath: configurationPath).run(invocation) { try QemuHook.readAll() }
        for message in outcome.messages {
            printError(message.description)
            systemLog(message)
        }
        if !outcome.standardOutput.isEmpty, !writeAll(outcome.standardOutput, to: 1) {
            printError(
                "recontextd hook: error: \(domain): cannot write the domain XML to standard output: \(String(cString: strerror(errno)))"
            )
            throw ExitCode.failure
        }
        if outcome.exitStatus != 0 { throw ExitCode(outcome.exitStatus) }
    }

    /// Writes all of `bytes` to `fd`, retrying partial writes. The corresponding C function is `write`.
    private func writeAll(_ bytes: [UInt8], to fd: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    /// Copies a message to the system log (ident `recontextd-hook`): libvirt keeps a successful
    /// hook's standard error only in its debug log, and a warning must reach the operator.
    /// The corresponding C function is `vsyslog` (`syslog` is variadic).
    private func systemLog(_ message: QemuHook.Message) {
        let priority: Int32
        switch message.severity {
        case .notice: priority = LOG_NOTICE
        case .warning: priority = LOG_WARNING
        case .error: priority = LOG_ERR
        }
        "recontextd-hook".withCString { ident in
            openlog(ident, LOG_PID, LOG_DAEMON)
            message.text.withCString { text in
                withVaList([text]) { vsyslog(priority, "%s", $0) }
            }
            closelog()
        }
    }
}
