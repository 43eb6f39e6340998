import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Virt

/// The host-guest channel's transport against a real libvirtd with QEMU: `virDomainOpenChannel`
/// streams on firmware-only VMs (no guest reads the port; the bytes a guest sends are covered by
/// the guest suites).
@Suite("real libvirtd: guest channel streams (virDomainOpenChannel)", .realPart(missing: LibvirtTestHost.skipReason))
struct ChannelStreamTests {
    static let channel = "org.recontextd.channel.0"
    static let device =
        "<channel type='unix'><source mode='bind'/><target type='virtio' name='\(channel)'/></channel>"

    /// A running firmware-only VM, with the channel or without; destroyed and undefined at the end.
    final class VM {
        let connection: Connection
        let domain: Domain

        init(withChannel: Bool, controller: Bool = false) async throws {
            let host = try await SharedLibvirtHost.shared.get()
            connection = try Connection.open(host.uri)
            let name = "chan-\(UUID().uuidString.prefix(8).lowercased())"
            var xml = LibvirtTestHost.minimalDomainXML(
                name: name, cdroms: [], type: LibvirtTestHost.preferredDomainType)
            if withChannel {
                xml = xml.replacingOccurrences(
                    of: "  </devices>", with: "    \(ChannelStreamTests.device)\n  </devices>")
            }
            if controller {
                xml = xml.replacingOccurrences(
                    of: "  </devices>", with: "    <controller type='virtio-serial'/>\n  </devices>")
            }
            domain = try connection.defineDomain(xml: xml)
            try domain.start()
        }

        deinit {
            try? domain.destroy()
            try? domain.undefine()
            connection.close()
        }
    }

    /// Stream events, read as the daemon reads them: on `readable`, a receive (libvirt reports
    /// the end of a remote stream as readable, and the receive then finds the end).
    final class Events: Sendable {
        let stream = Mutex<ChannelStream?>(nil)
        let ends = Mutex(false)
        var ended: Bool { ends.withLock { $0 } }
        func append(_ event: ChannelStream.Event) {
            let end = event == .ended || stream.withLock { $0?.receive(maxBytes: 4096) } == .end
            if end { ends.withLock { $0 = true } }
        }
    }

    @Test("open, send, take over with force (the old stream ends), and the stream ends when the VM stops")
    func openSendForceEnd() async throws {
        let vm = try await VM(withChannel: true)
        defer { withExtendedLifetime(vm) {} }
        let first = Events()
        let stream = try ChannelStream.open(vm.domain, channel: Self.channel) { first.append($0) }
        first.stream.withLock { $0 = stream }
        try stream.send(Array("recontext/1 generation 1 hash=\(String(repeating: "0", count: 64))\n".utf8))
        #expect(stream.receive(maxBytes: 4096) == .wouldBlock)
        let second = Events()
        let takeover = try ChannelStream.open(vm.domain, channel: Self.channel, force: true) { second.append($0) }
        second.stream.withLock { $0 = takeover }
        #expect(await eventually(timeout: .seconds(30)) { first.ended }, "the first stream was told it lost the port")
        stream.close()
        try vm.domain.destroy()
        #expect(await eventually(timeout: .seconds(30)) { second.ended })
        #expect(takeover.receive(maxBytes: 16) == .end)
        takeover.close()
        takeover.close() // idempotent
    }

    @Test("a VM without the channel: a clear error; hot-plugged where a virtio-serial controller is, then it opens")
    func absentThenAdded() async throws {
        let vm = try await VM(withChannel: false, controller: true)
        defer { withExtendedLifetime(vm) {} }
        let error = try #require(throws: VirtError.self) {
            _ = try ChannelStream.open(vm.domain, channel: Self.channel) { _ in }
        }
        #expect(error.message.contains("cannot find channel"), "\(error)")
        try vm.domain.attachDevice(xml: Self.device, impact: [.live, .config])
        let stream = try ChannelStream.open(vm.domain, channel: Self.channel) { _ in }
        stream.close()
        #expect(try vm.domain.xmlDescription([.inactive]).contains(Self.channel))
    }

    @Test(
        "without a virtio-serial controller the channel cannot be hot-plugged (libvirt 9.0): only the definition takes it"
    )
    func noController() async throws {
        let vm = try await VM(withChannel: false)
        defer { withExtendedLifetime(vm) {} }
        let live = try #require(throws: VirtError.self) {
            try vm.domain.attachDevice(xml: Self.device, impact: [.live])
        }
        #expect(live.message.contains("virtio-serial"), "\(live)")
        let controller = try #require(throws: VirtError.self) {
            try vm.domain.attachDevice(xml: "<controller type='virtio-serial'/>", impact: [.live])
        }
        #expect(controller.message.contains("cannot be hot plugged"), "\(controller)")
        try vm.domain.attachDevice(xml: Self.device, impact: [.config])
        #expect(try vm.domain.xmlDescription([.inactive]).contains(Self.channel))
    }
}
