internal import CLibvirt
import Dispatch
import Synchronization
import Threads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// libvirt's default event loop, run on a dedicated thread.
///
/// libvirt delivers domain events, connection-close notifications and keepalives only while an
/// event loop runs. ``start()`` registers the default implementation (once per process, before
/// the first connection is opened; ``Connection/open(_:readOnly:)`` calls it) and starts a thread
/// that loops `virEventRunDefaultImpl`. Event callbacks run on that thread.
///
/// - Important: Callbacks on the loop thread only copy values and yield them into streams; they
///   never make libvirt RPC calls, which could deadlock the loop.
public enum LibvirtEventLoop {
    private struct State {
        var registered = false
        var running = false
        var stopRequested = false
        var finished: DispatchSemaphore?
    }
    private static let state = Mutex(State())

    /// Registers the default event implementation and starts the loop thread, if not yet running.
    ///
    /// Also installs a quiet error handler so libvirt does not print every error to stderr; errors
    /// are reported through ``VirtError`` instead, and ignores `SIGPIPE` (see ``ignoreSIGPIPE()``).
    /// - Throws: ``VirtError`` when libvirt cannot register its event implementation.
    public static func start() throws(VirtError) {
        // Everything under one lock: a second caller must not open a connection before the
        // first caller's registration has finished.
        let result: Result<Void, VirtError> = state.withLock { state in
            if !state.registered {
                ignoreSIGPIPE()
                virSetErrorFunc(nil, quietErrorHandler)
                // libvirt must be initialised explicitly in a multi-threaded program.
                if virInitialize() < 0 {
                    return .failure(LibvirtCall.lastError(operation: "virInitialize"))
                }
                virResetLastError()
                if virEventRegisterDefaultImpl() < 0 {
                    return .failure(LibvirtCall.lastError(operation: "virEventRegisterDefaultImpl"))
                }
                state.registered = true
            }
            guard !state.running else { return .success(()) }
            state.stopRequested = false
            let finished = DispatchSemaphore(value: 0)
            DetachedThread.start(name: "libvirt-event-loop") {
                while !LibvirtEventLoop.state.withLock({ $0.stopRequested }) {
                    if virEventRunDefaultImpl() < 0 {
                        // Only fails on internal errors; avoid a hot loop.
                        virResetLastError()
                        usleep(10_000)
                    }
                }
                finished.signal()
            }
            state.running = true
            state.finished = finished
            return .success(())
        }
        try result.get()
    }

    /// True while the loop thread runs.
    public static var isRunning: Bool { state.withLock { $0.running } }

    /// Stops the loop thread and waits for it to finish its current iteration.
    ///
    /// Wakes the loop with a 0 ms timeout, the documented way to interrupt `virEventRunDefaultImpl`
    /// from another thread. Connections should be closed first; events for them stop arriving.
    public static func stop() {
        let finished: DispatchSemaphore? = state.withLock { state in
            guard state.running else { return nil }
            state.stopRequested = true
            return state.finished
        }
        guard let finished else { return }
        virEventAddTimeout(0, wakeTimeout, nil, nil)
        finished.wait()
        state.withLock { state in
            state.running = false
            state.finished = nil
        }
    }
}

extension LibvirtEventLoop {
    /// Sets `SIGPIPE` to ignored, unless the program installed a handler of its own.
    ///
    /// libvirt's client sends with `write(2)` and blocks `SIGPIPE` only around its own `poll`: a
    /// call sent after the daemon went away (libvirtd restarted while the request was queued)
    /// raises `SIGPIPE`, whose default action kills the process silently, mid-log-line. Seen
    /// here: a daemon started from a shell (or a test) died with signal 13 in
    /// `virDomainLookupByUUIDString` -> `virNetSocketWrite` right after a libvirtd restart.
    /// Ignored, the write fails with `EPIPE` and the call reports a lost connection, which is
    /// retried. (systemd services ignore it by default, `IgnoreSIGPIPE=yes`; virsh ignores it too.)
    static func ignoreSIGPIPE() {
        var current = sigaction()
        guard sigaction(SIGPIPE, nil, &current) == 0, current.__sigaction_handler.sa_handler == nil else { return }
        signal(SIGPIPE, SIG_IGN)
    }
}

/// Removes the one-shot wake-up timer added by ``LibvirtEventLoop/stop()``.
private func wakeTimeout(_ timer: Int32, _ opaque: UnsafeMutableRawPointer?) {
    virEventRemoveTimeout(timer)
}

/// Swallows libvirt's default printing of errors to stderr; ``LibvirtCall`` reads them instead.
private func quietErrorHandler(_ userData: UnsafeMutableRawPointer?, _ error: virErrorPtr?) {}
