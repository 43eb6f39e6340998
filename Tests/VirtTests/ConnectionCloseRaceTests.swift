import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Virt

/// `Connection.close()` racing with calls and event deregistrations on other threads, against a
/// real libvirtd (host 61), also across a libvirtd restart: what recontextd does when it
/// reconnects while a reload's reconcile still runs on the old connection (issue 6).
///
/// Before: `close()` dropped the only libvirt reference while calls were in flight (libvirt's
/// API calls do not reference the connection), so they could use freed memory; deregistrations
/// ran their RPCs under a lock that `close()` waited for; and a call sent to a restarted libvirtd
/// raised SIGPIPE, which kills a process that has not ignored it.
@Suite(
    "real libvirtd: closing a connection while other threads use it",
    .serialized, .realPart(missing: LibvirtTestHost.skipReason))
struct ConnectionCloseRaceTests {
    /// What the worker threads saw: calls that succeeded, and failures by libvirt error code.
    final class Tally: Sendable {
        let state = Mutex((succeeded: 0, failures: [Int32: Int](), unexpected: [String]()))
        func success() { state.withLock { $0.succeeded += 1 } }
        func failure(_ error: any Error) {
            state.withLock { state in
                if let error = error as? VirtError {
                    state.failures[error.code.rawValue, default: 0] += 1
                } else {
                    state.unexpected.append("\(error)")
                }
            }
        }
    }

    /// Starts `count` threads that call `body` until it throws; returns a group to wait on.
    static func workers(_ count: Int, tally: Tally, _ body: @escaping @Sendable () throws -> Void) -> DispatchGroup {
        let group = DispatchGroup()
        for _ in 0..<count {
            group.enter()
            Thread {
                defer { group.leave() }
                while true {
                    do {
                        try body()
                        tally.success()
                    } catch {
                        tally.failure(error)
                        return
                    }
                }
            }.start()
        }
        return group
    }

    @Test(
        "close() while 4 threads make calls and an event stream deregisters, 150 times: every call ends with a result or a clean error"
    )
    func closeWhileCallsInFlight() async throws {
        let host = try await LibvirtTestHost.start(.numbered(61))
        defer { host.stopBlocking() }
        let name = "race-\(UUID().uuidString.prefix(8).lowercased())"
        try host.defineDomain(LibvirtTestHost.minimalDomainXML(name: name, cdroms: [], type: "qemu"))
        defer { _ = try? host.virsh(["undefine", name]) }
        let uuid = try host.virsh(["domuuid", name]).trimmingCharacters(in: .whitespacesAndNewlines)

        let tally = Tally()
        var stuck = 0
        for round in 0..<150 {
            let connection = try Connection.open(host.uri)
            let events = try connection.events()
            let consumer = Task { for await _ in events {} }
            let group = Self.workers(4, tally: tally) {
                switch round % 3 {
                case 0: _ = try connection.listDomains()
                case 1: _ = try connection.domain(uuid: uuid).name
                default: _ = try connection.hostname()
                }
            }
            // A sleep on purpose (the race under test): let the calls get going (more of them in
            // flight in later rounds), then close under them.
            usleep(UInt32(200 + (round % 10) * 300))
            if round % 2 == 0 { consumer.cancel() } // the stream's deregistration races with close()
            connection.close()
            consumer.cancel()
            if group.wait(timeout: .now() + 60) == .timedOut {
                // Before the fix: the calls hung in virNetClientSendWithReply (virCondWait) after
                // close() dropped the last reference under them. Their threads stay stuck.
                stuck += 1
                break
            }
            // After close() every call fails at once, without touching the closed handle.
            #expect(throws: VirtError.self) { _ = try connection.listDomains() }
        }
        let result = tally.state.withLock { $0 }
        print(
            "[issue 6] close() under 4 busy threads, 150 rounds: \(result.succeeded) calls succeeded, failures by libvirt code: \(result.failures.sorted { $0.key < $1.key })"
        )
        #expect(stuck == 0, "rounds whose calls never returned after close()")
        #expect(result.unexpected.isEmpty, "\(result.unexpected)")
        // The calls that saw the close got the closed-connection error.
        #expect(result.failures[VirtError.Code.invalidConnection.rawValue, default: 0] > 0, "\(result.failures)")
    }

    @Test(
        "libvirtd restarted under busy threads, then close(), 8 times: calls fail with a lost connection instead of killing the process (SIGPIPE)"
    )
    func restartThenClose() async throws {
        let host = try await LibvirtTestHost.start(.numbered(61))
        defer { host.stopBlocking() }
        var stuck = 0
        let tally = Tally()
        for _ in 0..<8 {
            let connection = try Connection.open(host.uri)
            let events = try connection.events()
            let closed = Task { () -> Bool in
                for await event in events { if case .closed = event { return true } }
                return false
            }
            let group = Self.workers(3, tally: tally) { _ = try connection.listDomains() }
            try host.restartLibvirtd()
            if group.wait(timeout: .now() + 60) == .timedOut {
                stuck += 1
                break
            }
            // The calls saw the old daemon go away; the stream reports the close.
            #expect(await closed.value)
            connection.close()
        }
        let result = tally.state.withLock { $0 }
        print(
            "[issue 6] libvirtd restarted under 3 busy threads, 8 times: failures by libvirt code: \(result.failures.sorted { $0.key < $1.key })"
        )
        #expect(stuck == 0, "rounds whose calls never returned after the restart")
        #expect(result.unexpected.isEmpty, "\(result.unexpected)")
        // Still alive (a SIGPIPE would have killed the test process), and the new daemon answers.
        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        #expect(connection.isAlive)
    }
}
