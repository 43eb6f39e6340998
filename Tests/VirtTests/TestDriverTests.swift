import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Virt

/// Tests against libvirt's in-process test driver (`test:///default`): no daemon needed.
///
/// The test driver's state is shared by every connection in the process, and swift-testing runs
/// tests in parallel, so every test uses its own domain names and filters events by UUID.
@Suite("libvirt test driver")
struct TestDriverTests {
    static let uri = "test:///default"

    static func domainXML(name: String, uuid: UUID = UUID()) -> String {
        """
        <domain type='test'>
          <name>\(name)</name>
          <uuid>\(uuid.uuidString.lowercased())</uuid>
          <memory unit='MiB'>128</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type></os>
          <devices>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='/var/lib/recontextd/images/a.iso'/>
              <target dev='sda' bus='sata'/>
              <readonly/>
            </disk>
            <disk type='file' device='disk'>
              <source file='/var/lib/x.img'/>
              <target dev='vda' bus='virtio'/>
            </disk>
          </devices>
        </domain>
        """
    }

    @Test("define, start, suspend, resume, destroy, undefine: exactly the events libvirt sends, in order")
    func lifecycleEventsInOrder() async throws {
        let connection = try Connection.open(Self.uri)
        defer { connection.close() }
        let events = EventCollector(try connection.events())
        let name = "lifecycle-\(UUID().uuidString.prefix(8))"

        let domain = try connection.defineDomain(xml: Self.domainXML(name: name))
        try domain.start()
        try domain.suspend()
        try domain.resume()
        try domain.destroy()
        try domain.undefine()

        let received = await events.waitFor(domain: domain.uuid, count: 6)
        #expect(
            received == [
                .lifecycle(.defined(.added)),
                .lifecycle(.started(.booted)),
                .lifecycle(.suspended(.paused)),
                .lifecycle(.resumed(.unpaused)),
                .lifecycle(.stopped(.destroyed)),
                .lifecycle(.undefined(.removed)),
            ])
        // Nothing else arrives for this domain.
        let all = await events.waitFor(domain: domain.uuid, count: 7, timeout: .milliseconds(300))
        #expect(all.count == 6)
    }

    @Test("lookup by name and UUID, state, XML description and CD-ROM devices")
    func lookupAndDescribe() throws {
        let connection = try Connection.open(Self.uri, readOnly: false)
        defer { connection.close() }
        let name = "describe-\(UUID().uuidString.prefix(8))"
        let uuid = UUID()
        let defined = try connection.defineDomain(xml: Self.domainXML(name: name, uuid: uuid))
        defer { try? defined.undefine() }

        let byName = try connection.domain(named: name)
        let byUUID = try connection.domain(uuid: uuid.uuidString)
        #expect(byName.uuid == uuid.uuidString.lowercased())
        #expect(byUUID.name == name)
        #expect(try byName.state().state == .shutoff)
        #expect(try byName.isPersistent())
        #expect(try !byName.isActive())
        #expect(try connection.listDomains().contains { $0.uuid == byName.uuid })
        #expect(try connection.listDomains(.inactive).contains { $0.uuid == byName.uuid })

        let cdroms = try byName.cdroms()
        #expect(cdroms.count == 1)
        #expect(cdroms.first?.target == "sda")
        #expect(cdroms.first?.bus == "sata")
        #expect(cdroms.first?.sourceFile == "/var/lib/recontextd/images/a.iso")
        #expect(cdroms.first?.isReadOnly == true)
    }

    @Test("metadata in a custom namespace: set, get, change event, remove")
    func metadataRoundTrip() async throws {
        let connection = try Connection.open(Self.uri)
        defer { connection.close() }
        let events = EventCollector(try connection.events())
        let name = "metadata-\(UUID().uuidString.prefix(8))"
        let domain = try connection.defineDomain(xml: Self.domainXML(name: name))
        defer { try? domain.undefine() }
        let namespace = "urn:recontextd:test:1"

        #expect(try domain.metadata(namespace: namespace) == nil)
        try domain.setMetadata(
            "<context managed='yes'><var name='a'>x &amp; y</var></context>", key: "rc", namespace: namespace,
            impact: .config)
        let stored = try #require(try domain.metadata(namespace: namespace, impact: .config))
        #expect(stored.contains("managed=\"yes\""))
        #expect(stored.contains("x &amp; y"))

        let received = await events.waitFor(domain: domain.uuid, count: 2)
        #expect(received.first == .lifecycle(.defined(.added)))
        #expect(received.last == .metadataChange(.element, namespace: namespace))

        try domain.setMetadata(nil, key: "rc", namespace: namespace, impact: .config)
        #expect(try domain.metadata(namespace: namespace, impact: .config) == nil)
    }

    @Test("an unknown domain maps to a permanent not-found error")
    func unknownDomain() throws {
        let connection = try Connection.open(Self.uri)
        defer { connection.close() }
        let error = try #require(throws: VirtError.self) { try connection.domain(named: "no-such-domain-\(UUID())") }
        #expect(error.code == .noDomain)
        #expect(error.isNoDomain)
        #expect(!error.isTransient)
        #expect(error.description.contains("no-such-domain"))
        let byUUID = try #require(throws: VirtError.self) { try connection.domain(uuid: UUID().uuidString) }
        #expect(byUUID.code == .noDomain)
    }

    @Test("device update, attach and detach on the test driver map to an unsupported error")
    func deviceOperationsUnsupported() throws {
        let connection = try Connection.open(Self.uri)
        defer { connection.close() }
        let domain = try connection.defineDomain(xml: Self.domainXML(name: "devices-\(UUID().uuidString.prefix(8))"))
        defer { try? domain.undefine() }
        try domain.start()
        defer { try? domain.destroy() }
        let cdrom = try #require(try domain.cdroms().first)
        let xml = cdrom.xml(source: "/tmp/new.iso")
        for operation in [domain.updateDevice, domain.attachDevice, domain.detachDevice] {
            let error = try #require(throws: VirtError.self) { try operation(xml, [.live]) }
            #expect(error.isUnsupported, "\(error)")
            #expect(!error.isTransient)
        }
    }

    @Test("an unknown driver URI fails with a clear error")
    func badURI() {
        #expect(throws: VirtError.self) { try Connection.open("nosuchdriver:///x") }
    }

    @Test("events stop being delivered and the stream ends when the connection closes")
    func streamEndsOnClose() async throws {
        let connection = try Connection.open(Self.uri)
        let events = try connection.events()
        connection.close()
        var last: ConnectionEvent?
        for await event in events { last = event }
        #expect(last == .closed(.client))
    }
}

/// Drains an event stream in the background and lets tests wait for the events of one domain.
///
/// One consumer for the stream's whole life: cancelling an `AsyncStream` consumer would end the
/// stream, so waits poll the buffer instead of iterating themselves.
final class EventCollector: Sendable {
    private final class Buffer: Sendable {
        let events = Mutex<[ConnectionEvent]>([])
    }
    private let buffer = Buffer()
    private let task: Task<Void, Never>

    init(_ events: DomainEventStream) {
        let buffer = self.buffer
        task = Task {
            for await event in events { buffer.events.withLock { $0.append(event) } }
        }
    }

    deinit { task.cancel() }

    /// Every event received so far.
    var all: [ConnectionEvent] { buffer.events.withLock { $0 } }

    /// The event kinds of one domain received so far.
    func kinds(of uuid: String) -> [DomainEventKind] {
        all.compactMap { event in
            guard case .domain(let domainEvent) = event, domainEvent.domain.uuid == uuid else { return nil }
            return domainEvent.kind
        }
    }

    /// Waits until an event of the domain matches, or the timeout passed; returns all its events.
    func waitUntil(
        domain uuid: String, timeout: Duration = .seconds(10), _ matches: (DomainEventKind) -> Bool
    ) async -> [DomainEventKind] {
        await eventually(timeout: timeout, every: .milliseconds(5)) { kinds(of: uuid).contains(where: matches) }
        return kinds(of: uuid)
    }

    /// Waits until `count` events of the domain arrived, or the timeout passed; returns them.
    func waitFor(domain uuid: String, count: Int, timeout: Duration = .seconds(10)) async -> [DomainEventKind] {
        await eventually(timeout: timeout, every: .milliseconds(5)) { kinds(of: uuid).count >= count }
        return kinds(of: uuid)
    }
}
