import Foundation

extension LibvirtTestHost {
    /// The crashes (core dumps) of this host's `libvirtd`s and `virtlogd`, with their backtraces.
    ///
    /// Call it after ``stopBlocking(timeout:)``, so that every core is complete. A daemon that
    /// died by a signal that dumps core (SIGSEGV, SIGABRT, ...) is reported as "libvirtd crashed
    /// with SIGSEGV (pid N, core PATH)" followed by `thread apply all bt`; see ``CoreDumps``.
    public func crashes() -> [CoreDumps.Crash] {
        var crashes: [CoreDumps.Crash] = []
        for pid in libvirtdPIDHistory where pid > 0 {
            if let crash = CoreDumps.crash(of: pid, program: "libvirtd", binary: "/usr/sbin/libvirtd", since: startedAt)
            {
                crashes.append(crash)
            }
        }
        if virtlogdPID > 0,
            let crash = CoreDumps.crash(
                of: virtlogdPID, program: "virtlogd", binary: "/usr/sbin/virtlogd", since: startedAt)
        {
            crashes.append(crash)
        }
        return crashes
    }
}
