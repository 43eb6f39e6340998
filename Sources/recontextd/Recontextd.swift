import ArgumentParser
import Logging
import RecontextConfiguration
import RecontextCore
import RecontextDaemon

/// The `recontextd` command: the host daemon and its tools.
@main
struct Recontextd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recontextd",
        abstract: "Keeps running VMs' context CD-ROMs built from this host's facts, across live migrations.",
        discussion: """
            recontextd listens to libvirt domain events. When a VM arrives by live migration, starts, or has \
            its context metadata changed, it rebuilds the VM's context image (cloud-init NoCloud, ConfigDrive, \
            OpenNebula or plain files) in process from this host's facts and the VM's own data, and swaps it \
            into the VM's CD-ROM without a reboot.
            """,
        version: "0.1.0",
        subcommands: [
            RunCommand.self, CheckConfigCommand.self, ApplyCommand.self, RenderCommand.self, StatusCommand.self,
            BuildISOCommand.self, HookCommand.self,
        ])
}

/// Options every daemon-facing command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "The configuration file.")
    var configurationPath: String = DaemonConfiguration.defaultPath

    @Option(
        name: [.customShort("c"), .customLong("connect")], help: "libvirt URI; overrides libvirt.uri (like virsh -c).")
    var connect: String?

    @Option(name: .customLong("state-dir"), help: "Directory of lock and status files.")
    var stateDirectory: String = DaemonOptions.defaultStateDirectory

    @Option(
        name: .customLong("log-level"),
        help: "trace, debug, info, notice, warning, error or critical; overrides log.level.")
    var logLevel: String?

    @Option(
        name: .customLong("log-target"),
        help: "auto (the journal when stderr is the journal stream), journal or stderr; overrides log.target.")
    var logTarget: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError(
                "--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let logTarget, DaemonConfiguration.LogTarget(rawValue: logTarget) == nil {
            let names = DaemonConfiguration.LogTarget.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--log-target must be one of \(names)")
        }
    }

    var daemonOptions: DaemonOptions {
        DaemonOptions(
            configurationPath: configurationPath, uriOverride: connect, stateDirectory: stateDirectory,
            logLevelOverride: logLevel.flatMap(Logger.Level.init(rawValue:)),
            logTargetOverride: logTarget.flatMap(DaemonConfiguration.LogTarget.init(rawValue:)))
    }

    /// Loads the configuration, or prints every problem and exits with 78 (EX_CONFIG).
    func loadConfiguration() throws -> DaemonConfiguration {
        do {
            return try daemonOptions.loadConfiguration()
        } catch {
            printError(error.description)
            throw ExitCode(ConfigurationErrors.exitCode)
        }
    }

    /// Sets up logging at the configured level: native journal entries or standard error, as
    /// `log.target` (or `--log-target`) says.
    func bootstrapLogging(_ configuration: DaemonConfiguration) -> Logger {
        JournalLogHandler.bootstrap(level: configuration.logLevel, target: configuration.logTarget)
        return Logger(label: "recontextd")
    }
}
