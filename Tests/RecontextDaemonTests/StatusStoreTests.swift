import AtomicFile
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import RecontextDaemon

/// The status files: the daemon and `recontextd apply` may write one domain's record at once.
@Suite("status files: written atomically, whoever writes them")
struct StatusStoreTests {
    static let uuid = "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab"

    static func record(_ runID: String, warnings: Int = 0) -> StatusStore.Record {
        StatusStore.Record(
            uuid: uuid, name: "web1", result: "applied", trigger: "started", runID: runID,
            time: Date(timeIntervalSince1970: 1_700_000_000), generation: 7, contentHash: "abc", image: "/x.iso",
            warnings: (0..<warnings).map { "warning \($0) " + String(repeating: "w", count: 200) },
            timingsMilliseconds: ["total": 12.5])
    }

    static func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "statusstore-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    @Test("two writers racing on one status file (daemon and apply): never torn, never ENOENT, nothing left over")
    func racingWriters() throws {
        let state = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let store = StatusStore(stateDirectory: state)
        // Different sizes, so that a mix of the two would not decode.
        let records = [Self.record("daemon", warnings: 40), Self.record("apply", warnings: 3)]
        try store.write(records[0])
        let failures = Mutex<[String]>([])
        let bad = Mutex<[String]>([])
        let writersLeft = Atomic<Int>(2)
        let writer: @Sendable (Int) -> Void = { index in
            for _ in 0..<150 {
                do { try store.write(records[index]) } catch { failures.withLock { $0.append("\(error)") } }
            }
            writersLeft.subtract(1, ordering: .releasing)
        }
        runOnThreads([
            { writer(0) }, { writer(1) },
            {
                while writersLeft.load(ordering: .acquiring) > 0 {
                    let all = store.all()
                    if all.count != 1 || !records.contains(all[Self.uuid] ?? Self.record("none")) {
                        bad.withLock { $0.append("\(all.keys.sorted())") }
                    }
                }
            },
        ])
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { Array($0.prefix(3)) })")
        #expect(bad.withLock { $0 }.isEmpty, "a reader saw a torn or missing record: \(bad.withLock { $0.count })")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == [Self.uuid + ".json"])
    }

    @Test("a crash between write and rename leaves the old record; status ignores the temporary file")
    func crashBeforeRename() throws {
        let state = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let store = StatusStore(stateDirectory: state)
        try store.write(Self.record("old"))
        let seen = Mutex<[String: StatusStore.Record]>([:])
        let temporaryFile = Mutex<String?>(nil)
        try store.write(Self.record("new")) { temporary in
            // The disk as a crash here would leave it: the complete new record under a hidden
            // temporary name, the old one under the real name.
            temporaryFile.withLock { $0 = temporary }
            seen.withLock { $0 = store.all() }
            #expect(FileManager.default.fileExists(atPath: temporary))
        }
        #expect(seen.withLock { $0[Self.uuid]?.runID } == "old")
        #expect(seen.withLock { $0.count } == 1)
        let temporary = try #require(temporaryFile.withLock { $0 })
        #expect(AtomicFile.isTemporaryName(URL(fileURLWithPath: temporary).lastPathComponent))
        #expect(store.all()[Self.uuid]?.runID == "new")
    }

    @Test("the status file has mode 0640 and the record round-trips")
    func modeAndRoundTrip() throws {
        let state = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let store = StatusStore(stateDirectory: state)
        try store.write(Self.record("r1"))
        let attributes = try FileManager.default.attributesOfItem(atPath: store.path(of: Self.uuid))
        #expect((attributes[.posixPermissions] as? Int) == 0o640)
        #expect(store.all()[Self.uuid] == Self.record("r1"))
    }
}
