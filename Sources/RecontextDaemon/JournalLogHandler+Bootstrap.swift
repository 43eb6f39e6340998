import Logging
import RecontextConfiguration
import RecontextCore

// MARK: - Choosing the handler

extension JournalLogHandler {
    /// Where entries go once `log.target` is resolved.
    public enum Destination: Sendable, Hashable {
        /// Native journal entries (``JournalLogHandler``).
        case journal
        /// Standard error (``StandardErrorLogHandler``).
        case standardError
    }

    /// Resolves `log.target`: `auto` is the journal when standard error is the journal stream
    /// systemd set up (`JOURNAL_STREAM` names it), else standard error. `journal` is standard
    /// error too when no journald listens: libsystemd drops entries silently then.
    /// - Parameters:
    ///   - target: the configured target.
    ///   - stderrIsJournal: whether standard error is the journal stream.
    ///   - journalAvailable: whether journald's socket exists.
    public static func destination(
        for target: DaemonConfiguration.LogTarget, stderrIsJournal: Bool = StandardErrorLogHandler.stderrIsJournal(),
        journalAvailable: Bool = Journal.isAvailable
    ) -> Destination {
        switch target {
        case .journal: journalAvailable ? .journal : .standardError
        case .stderr: .standardError
        case .auto: stderrIsJournal && journalAvailable ? .journal : .standardError
        }
    }

    /// Bootstraps swift-log (once per process) with the handler for `target` at `level`.
    /// - Returns: where entries go.
    @discardableResult
    public static func bootstrap(level: Logger.Level, target: DaemonConfiguration.LogTarget) -> Destination {
        let destination = destination(for: target)
        switch destination {
        case .journal:
            LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
        case .standardError:
            LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label, level: level) }
            if target == .journal {
                Logger(label: "recontextd").warning(
                    "log.target is journal, but no journald listens; logging to standard error",
                    metadata: ["socket": "\(Journal.socketPath)"])
            }
        }
        return destination
    }
}
