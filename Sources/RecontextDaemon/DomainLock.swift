import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A per-domain lock shared by every recontextd process on the host (`flock` on a file in the
/// state directory), so `recontextd apply` and the daemon never run the pipeline of one domain
/// at the same time. The lock dies with the process holding it: a killed run never blocks.
public struct DomainLock: Sendable {
    /// The directory holding the lock files (`locks/` below the state directory).
    public let directory: String

    /// Creates the lock directory (mode 0700) below the state directory.
    public init(stateDirectory: String) {
        directory = stateDirectory + "/locks"
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Runs `body` while holding the lock of domain `uuid`.
    public func withLock<T: Sendable>(_ uuid: String, _ body: () async -> T) async -> T {
        let path = directory + "/" + uuid.filter { $0.isHexDigit || $0 == "-" } + ".lock"
        let fd: Int32 = await Blocking.run { () -> Int32 in
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd >= 0 { while flock(fd, LOCK_EX) != 0 && errno == EINTR {} }
            return fd
        }
        defer { if fd >= 0 { close(fd) } }
        return await body()
    }
}
