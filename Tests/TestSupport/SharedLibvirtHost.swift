import Foundation

/// One real libvirt host shared by every test of the process that needs one.
///
/// Starting a host takes one to two seconds; tests running in parallel define their own uniquely
/// named domains on it. The host stops when the test process exits (its supervisor sees its
/// standard input close), also when the process crashes.
public actor SharedLibvirtHost {
    /// The process-wide instance.
    public static let shared = SharedLibvirtHost()

    private var host: LibvirtTestHost?
    private var starting: Task<LibvirtTestHost, any Error>?

    /// The shared host, started on first use.
    public func get() async throws -> LibvirtTestHost {
        if let host { return host }
        if let starting { return try await starting.value }
        let task = Task {
            var configuration = LibvirtTestHost.Configuration.numbered(9)
            configuration.sharedDirectories = [TestDirectories.sharedImages]
            return try await LibvirtTestHost.start(configuration)
        }
        starting = task
        let started = try await task.value
        host = started
        return started
    }
}

/// Directories tests share with the libvirt hosts they start.
public enum TestDirectories {
    /// A directory visible at the same path inside every test host (for images).
    public static let sharedImages = "/tmp/recontextd-tests/images"

    /// A new, empty directory below ``sharedImages``.
    public static func makeImageDirectory(_ label: String) throws -> String {
        let path = sharedImages + "/" + label + "-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes `count` × 2048 bytes of distinct content to `path` (QEMU takes any file as raw media).
    public static func writeMedia(_ path: String, tag: String, blocks: Int = 4) throws {
        var bytes = [UInt8](repeating: 0, count: 2048 * blocks)
        let tagBytes = Array(tag.utf8)
        for index in bytes.indices { bytes[index] = tagBytes[index % max(tagBytes.count, 1)] }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
