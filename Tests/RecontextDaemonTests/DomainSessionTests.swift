import Foundation
import RecontextCore
import Synchronization
import Testing
import Virt

@testable import RecontextDaemon

/// Issue 11: one domain look-up per pipeline run, libvirt calls on one serial executor per
/// connection, and a bounded executor for the other blocking work. libvirt's in-process test
/// driver (`test:///default`): no daemon, no root.
@Suite("domain sessions and blocking executors (libvirt test driver)")
struct DomainSessionTests {
    static func domainXML(name: String, uuid: String) -> String {
        """
        <domain type='test'><name>\(name)</name><uuid>\(uuid)</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>
        <os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='cdrom'>
        <source file='/var/lib/recontextd/images/a.iso'/><target dev='sda' bus='sata'/><readonly/></disk></devices>
        </domain>
        """
    }

    @Test("a session looks its domain up once for a run's calls, and again only after a reconnect")
    func oneLookupPerRun() async throws {
        let hypervisor = LibvirtHypervisor(uri: "test:///default")
        let connection = try hypervisor.connect()
        let uuid = UUID().uuidString.lowercased()
        let domain = try connection.defineDomain(xml: Self.domainXML(name: "session-\(uuid.prefix(8))", uuid: uuid))
        try domain.start()
        defer {
            try? domain.destroy()
            try? domain.undefine()
        }

        let session = try #require(try await hypervisor.session(for: uuid) as? LibvirtDomainSession)
        #expect(session.lookups == 0)
        let snapshot = try await session.snapshot()
        #expect(snapshot.identity.uuid == uuid)
        #expect(snapshot.drives.map(\.target) == ["sda"])
        try await session.setAppliedMetadata("<applied generation='1'/>", scope: .live)
        _ = try await session.persistentDrives()
        _ = try await session.snapshot()
        #expect(session.lookups == 1)

        // After a reconnect the old Domain belongs to a closed connection: looked up once more.
        try await Blocking.run { () throws(VirtError) in _ = try hypervisor.connect() }
        #expect(try await session.snapshot().appliedMetadata?.contains("generation=\"1\"") == true)
        #expect(session.lookups == 2)
        await hypervisor.disconnectAndWait()
        await #expect(throws: HypervisorError.self) { try await session.snapshot() }
    }

    @Test("the executor runs at most its bound of threads, every job once; with one thread, in order")
    func boundedExecutor() async throws {
        let executor = BlockingExecutor(name: "test-bounded", maximumThreads: 3)
        defer { executor.shutdown() }
        let running = Concurrency()
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<40 {
                group.addTask {
                    await executor.run { () -> Int in
                        running.state.withLock {
                            $0.now += 1
                            $0.most = max($0.most, $0.now)
                        }
                        usleep(2_000) // a sleep on purpose: a blocking job, so that jobs overlap
                        running.state.withLock { $0.now -= 1 }
                        return index
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.sorted() == Array(0..<40))
        #expect(running.state.withLock { $0.most } <= 3)
        #expect(executor.threadCount <= 3)

        let serial = BlockingExecutor(name: "test-serial", maximumThreads: 1)
        defer { serial.shutdown() }
        let order = Order()
        for index in 0..<20 { serial.submit { order.list.withLock { $0.append(index) } } }
        await serial.run {}
        #expect(order.list.withLock { $0 } == Array(0..<20))
        #expect(serial.threadCount == 1)
    }

    /// Seen in the reliability suite: a finished job's captures were released under the queue's
    /// lock, and a LibvirtDomainSession's deinit (which submits) then waited for that lock forever.
    @Test("a job whose captures' deinit submits to the same executor: no deadlock")
    func deinitThatSubmits() async {
        let serial = BlockingExecutor(name: "test-reentrant", maximumThreads: 1)
        defer { serial.shutdown() }
        let released = Counter()
        for _ in 0..<200 {
            let token = SubmitsOnDeinit(serial, released)
            serial.submit { withExtendedLifetime(token) {} }
        }
        await serial.run {}
        await serial.run {}
        #expect(released.count.withLock { $0 } == 200)
    }
}

/// Submits a job to `executor` from its deinit, as LibvirtDomainSession does.
private final class SubmitsOnDeinit: Sendable {
    let executor: BlockingExecutor
    let released: Counter
    init(_ executor: BlockingExecutor, _ released: Counter) {
        self.executor = executor
        self.released = released
    }
    deinit {
        let released = self.released
        executor.submit { released.count.withLock { $0 += 1 } }
    }
}

private final class Counter: Sendable {
    let count = Mutex(0)
}

private final class Concurrency: Sendable {
    let state = Mutex((now: 0, most: 0))
}

private final class Order: Sendable {
    let list = Mutex<[Int]>([])
}
