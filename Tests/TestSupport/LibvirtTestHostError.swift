import Foundation

// MARK: - Errors

/// Why a ``LibvirtTestHost`` could not start, or a command on it failed.
public enum LibvirtTestHostError: Error, CustomStringConvertible, Sendable {
    /// The machine lacks something (see ``LibvirtTestHost/skipReason``).
    case unavailable(String)
    /// The harness reported `{"ready": false}`; `logTail` holds the end of the daemons' logs.
    case startFailed(String, logTail: String)
    /// The harness said something this type does not understand, or went away mid-command.
    case protocolError(String)
    /// A program (or harness command) exited non-zero.
    case commandFailed(command: [String], status: Int32, standardError: String)
    /// The host was already stopped.
    case stopped

    public var description: String {
        switch self {
        case .unavailable(let reason):
            return reason
        case .startFailed(let message, let logTail):
            return "libvirt test host did not start: \(message)" + (logTail.isEmpty ? "" : "\n\(logTail)")
        case .protocolError(let message):
            return "libvirt test host harness: \(message)"
        case .commandFailed(let command, let status, let standardError):
            return "\(command.joined(separator: " ")) failed (status \(status)): \(standardError)"
        case .stopped:
            return "libvirt test host already stopped"
        }
    }
}
