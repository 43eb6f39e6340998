import AtomicFile
import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The one atomic-file helper: whole files only, no shared temporary name, nothing left behind.
@Suite("AtomicFile: a file appears only when complete, whoever writes it")
struct AtomicFileTests {
    /// A fresh directory, removed by the caller.
    static func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "atomicfile-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// 256 KiB of one byte: several `write` calls' worth, so that a torn file would show.
    static func payload(_ byte: UInt8, size: Int) -> [UInt8] { [UInt8](repeating: byte, count: size) }

    @Test("two writers racing on one file, a reader beside them: never a torn file, never a failure")
    func racingWriters() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/status.json"
        let payloads = [Self.payload(0x61, size: 256 * 1024), Self.payload(0x62, size: 192 * 1024)]
        try AtomicFile.write(payloads[0], to: path, mode: 0o640)
        let failures = Mutex<[String]>([])
        let torn = Mutex<Int>(0)
        let writersLeft = Atomic<Int>(2)
        let writer: @Sendable (Int) -> Void = { index in
            for _ in 0..<200 {
                do { try AtomicFile.write(payloads[index], to: path, mode: 0o640) } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            writersLeft.subtract(1, ordering: .releasing)
        }
        runOnThreads([
            { writer(0) }, { writer(1) },
            {
                while writersLeft.load(ordering: .acquiring) > 0 {
                    guard let data = FileManager.default.contents(atPath: path) else {
                        torn.withLock { $0 += 1 } // missing is as bad as torn
                        continue
                    }
                    if !payloads.contains(Array(data)) { torn.withLock { $0 += 1 } }
                }
            },
        ])
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(3) })")
        #expect(torn.withLock { $0 } == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["status.json"])
    }

    @Test("a crash between write and rename leaves the old file intact; the next write is not hindered")
    func crashBeforeRename() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/status.json"
        try AtomicFile.write(Array("old".utf8), to: path, mode: 0o640)
        let leftover = Mutex<String?>(nil)
        // The hook sees the disk as a crash at that point would leave it; keeps a copy of the
        // temporary file, which a crash would leave behind, and the injected failure stops the write.
        #expect(throws: AtomicFileError.self) {
            try AtomicFile.write(
                Array("new".utf8), to: path, mode: 0o640, group: nil, durable: true, label: "file",
                failingAt: .beforeRename,
                beforeRename: { temporary in
                    #expect(FileManager.default.contents(atPath: path) == Data("old".utf8))
                    #expect(FileManager.default.contents(atPath: temporary) == Data("new".utf8))
                    #expect(AtomicFile.isTemporaryName(URL(fileURLWithPath: temporary).lastPathComponent))
                    let copy = temporary + ".crash-copy"
                    try? FileManager.default.copyItem(atPath: temporary, toPath: copy)
                    leftover.withLock { $0 = copy }
                })
        }
        #expect(FileManager.default.contents(atPath: path) == Data("old".utf8))
        // What the crash leaves: the old file and a complete hidden temporary file.
        let copy = try #require(leftover.withLock { $0 })
        try FileManager.default.moveItem(atPath: copy, toPath: String(copy.dropLast(".crash-copy".count)))
        try AtomicFile.write(Array("next".utf8), to: path, mode: 0o640)
        #expect(FileManager.default.contents(atPath: path) == Data("next".utf8))
    }

    @Test("temporary names are hidden, unique, and never end like the destination")
    func temporaryNames() {
        let names = (0..<1000).map { _ in AtomicFile.temporaryName(for: "recontextd.prom") }
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { $0.hasPrefix(".") && !$0.hasSuffix(".prom") && AtomicFile.isTemporaryName($0) })
        #expect(AtomicFile.temporaryName(for: String(repeating: "x", count: 250)).utf8.count < 255)
        #expect(!AtomicFile.isTemporaryName("recontextd.prom"))
    }

    @Test("mode, flushed durability, and refusals: a symbolic link, a directory, a missing directory")
    func modeAndRefusals() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/file"
        try AtomicFile.write(Array("x".utf8), to: path, mode: 0o604, durable: false)
        try AtomicFile.makeDurable(path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o604)

        try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: path)
        let link = try #require(throws: AtomicFileError.self) {
            try AtomicFile.write(Array("y".utf8), to: directory + "/link", mode: 0o644)
        }
        #expect(link.code == .symbolicLink)
        #expect(FileManager.default.contents(atPath: path) == Data("x".utf8))

        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: false)
        let notFile = try #require(throws: AtomicFileError.self) {
            try AtomicFile.write([], to: directory + "/sub", mode: 0o644)
        }
        #expect(notFile.code == .notRegularFile)

        let missing = try #require(throws: AtomicFileError.self) {
            try AtomicFile.write([], to: directory + "/none/file", mode: 0o644, label: "status file")
        }
        #expect(missing.code == .systemCall && missing.errno == ENOENT && missing.path == directory + "/none")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["file", "link", "sub"])
    }
}
