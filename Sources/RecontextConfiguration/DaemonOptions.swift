import FoundationEssentials
import Logging
import RecontextCore

/// Where a daemon (or a one-shot command) finds its configuration and keeps its state.
public struct DaemonOptions: Sendable {
    /// The configuration file.
    public var configurationPath: String
    /// `--connect URI`: overrides `libvirt.uri`.
    public var uriOverride: String?
    /// Lock and status files (`$RUNTIME_DIRECTORY` under systemd, else `/run/recontextd`).
    public var stateDirectory: String
    /// `--log-level`: overrides `log.level`.
    public var logLevelOverride: Logger.Level?
    /// `--log-target`: overrides `log.target`.
    public var logTargetOverride: DaemonConfiguration.LogTarget?

    /// The state directory systemd gives us (`RuntimeDirectory=`), else `/run/recontextd`.
    public static var defaultStateDirectory: String {
        ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/run/recontextd"
    }

    /// Creates options.
    public init(
        configurationPath: String = DaemonConfiguration.defaultPath, uriOverride: String? = nil,
        stateDirectory: String = DaemonOptions.defaultStateDirectory, logLevelOverride: Logger.Level? = nil,
        logTargetOverride: DaemonConfiguration.LogTarget? = nil
    ) {
        self.configurationPath = configurationPath
        self.uriOverride = uriOverride
        self.stateDirectory = stateDirectory
        self.logLevelOverride = logLevelOverride
        self.logTargetOverride = logTargetOverride
    }

    /// Loads and validates the configuration file, applying the overrides.
    /// - Throws: ``ConfigurationErrors`` listing every problem with file, line and key.
    public func loadConfiguration() throws(ConfigurationErrors) -> DaemonConfiguration {
        var configuration = try ConfigurationLoader.load(path: configurationPath, allowMissing: false)
        if let uriOverride { configuration.libvirt.uri = uriOverride }
        if let logLevelOverride { configuration.logLevel = logLevelOverride }
        if let logTargetOverride { configuration.logTarget = logTargetOverride }
        return configuration
    }
}
