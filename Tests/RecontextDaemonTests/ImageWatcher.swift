import Foundation
import RecontextCore

/// Watches a directory with inotify (on its own thread) and records the mode and group of each
/// final-named image the moment it appears there (created, or renamed into place).
final class ImageWatcher: @unchecked Sendable {
    // @unchecked Sendable: `seen` is only touched under `lock`; the descriptors are set in init,
    // read by the watching thread, and closed by stop() after that thread has ended.
    private let lock = NSLock()
    private var seen: [String: (mode: mode_t, gid: gid_t)] = [:]
    private let directory: String
    private let inotify: Int32
    private let wake: (read: Int32, write: Int32)
    private let ended = DispatchSemaphore(value: 0)

    /// Starts watching `directory`.
    /// - Throws: `POSIXError` when inotify or the wake pipe cannot be set up.
    init(directory: String) throws {
        self.directory = directory
        inotify = inotify_init1(Int32(IN_CLOEXEC))
        guard inotify >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var ends: [Int32] = [0, 0]
        guard inotify_add_watch(inotify, directory, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0, pipe(&ends) == 0 else {
            let error = POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            close(inotify)
            throw error
        }
        wake = (ends[0], ends[1])
        Thread { [self] in
            watch()
            ended.signal()
        }.start()
    }

    /// Reads inotify events until ``stop()`` writes to the wake pipe.
    private func watch() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var descriptors = [
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
            ]
            guard poll(&descriptors, 2, -1) >= 0 else {
                if errno == EINTR { continue }
                return
            }
            if descriptors[0].revents != 0 {
                let count = read(inotify, &buffer, buffer.count)
                guard count > 0 else { return }
                for name in Self.names(in: buffer.prefix(count)) { record(name) }
            }
            if descriptors[1].revents != 0 { return }
        }
    }

    /// The names in a run of `struct inotify_event`s (16 bytes, then `len` bytes of NUL-padded name).
    private static func names(in events: ArraySlice<UInt8>) -> [String] {
        var names: [String] = []
        events.withUnsafeBytes { raw in
            var offset = 0
            while offset + 16 <= raw.count {
                let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let name = raw[(offset + 16)..<min(raw.count, offset + 16 + length)].prefix { $0 != 0 }
                if !name.isEmpty { names.append(String(decoding: name, as: UTF8.self)) }
                offset += 16 + length
            }
        }
        return names
    }

    private func record(_ name: String) {
        guard ImageNaming.parse(name) != nil else { return }
        var info = stat()
        guard lstat(directory + "/" + name, &info) == 0 else { return }
        lock.withLock {
            if seen[name] == nil { seen[name] = (info.st_mode & 0o7777, info.st_gid) }
        }
    }

    /// Stops watching (once the thread has read what was there); returns what was seen.
    func stop() -> [String: (mode: mode_t, gid: gid_t)] {
        _ = write(wake.write, "x", 1)
        ended.wait()
        close(wake.write)
        close(wake.read)
        close(inotify)
        return lock.withLock { seen }
    }
}
