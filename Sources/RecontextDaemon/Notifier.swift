internal import CSystemd
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Notifier

/// Tells systemd (`Type=notify`) what the daemon is doing, through `sd_notify`.
///
/// | daemon event | message |
/// |---|---|
/// | connected, subscribed, first reconcile done; a reload finished | `READY=1` |
/// | a status line | `STATUS=…` |
/// | SIGHUP: reloading | `RELOADING=1` and `MONOTONIC_USEC=…` (systemd 253+ wants both for `Type=notify-reload`; 252 takes `RELOADING=1`) |
/// | SIGTERM: stopping | `STOPPING=1` |
/// | every half `WatchdogSec=` | `WATCHDOG=1` (``NotifierWatchdog``) |
///
/// Without `NOTIFY_SOCKET` (not started by systemd) every call does nothing.
public struct Notifier: Sendable {
    /// The watchdog timeout systemd set (`WATCHDOG_USEC`, for this process), or `nil`.
    public let watchdogTimeout: Duration?

    /// A notifier for this process's environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    ///
    /// The corresponding C function for the watchdog is `sd_watchdog_enabled`.
    public init() {
        var microseconds: UInt64 = 0
        if sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogTimeout = .microseconds(Int64(clamping: microseconds))
        } else {
            watchdogTimeout = nil
        }
    }

    /// Whether `NOTIFY_SOCKET` is set, i.e. someone listens.
    public var isEnabled: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// How often to send `WATCHDOG=1`: half the timeout, as systemd recommends.
    public var watchdogInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// Sends newline-separated `KEY=value` assignments.
    ///
    /// The corresponding C function is `sd_notify`.
    /// - Returns: positive when sent, `0` without `NOTIFY_SOCKET`, a negative `errno` on failure.
    @discardableResult
    public func send(_ state: String) -> Int32 {
        sd_notify(0, state)
    }

    /// Sends the message for a daemon event (pass this as ``Daemon``'s `readiness` closure).
    public func callAsFunction(_ event: Daemon.ReadinessEvent) {
        send(Self.message(for: event))
    }

    /// The `sd_notify` message for a daemon event.
    /// - Parameters:
    ///   - event: what happened.
    ///   - monotonicMicroseconds: `CLOCK_MONOTONIC` now, for `MONOTONIC_USEC=`.
    public static func message(
        for event: Daemon.ReadinessEvent, monotonicMicroseconds: UInt64 = Notifier.monotonicMicroseconds()
    ) -> String {
        switch event {
        case .ready: "READY=1"
        case .reloading: "RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds)"
        case .stopping: "STOPPING=1"
        case .status(let text): "STATUS=" + text.replacing("\n", with: " ")
        }
    }

    /// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
