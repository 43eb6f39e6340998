import RecontextCore
import Virt

/// The guest channel over libvirt: `virDomainOpenChannel` on a stream of the channels connection
/// (a third connection, so a guest's traffic never waits behind the pipeline's calls, and the
/// pipeline's never behind a guest's), its calls on that connection's own executor.
extension LibvirtHypervisor: GuestPortOpener {
    public func openGuestPort(uuid: String, onEvent: @escaping @Sendable (GuestPortEvent) -> Void)
        async throws(HypervisorError) -> any GuestPort
    {
        let link = try link(for: "open guest channel")
        let stream = try await link.runOnChannels("open guest channel") { connection throws(VirtError) in
            let domain = try connection.domain(uuid: uuid)
            return try ChannelStream.open(domain, channel: GuestProtocol.portName, force: true) { event in
                onEvent(event == .readable ? .readable : .ended)
            }
        }
        return LibvirtGuestPort(stream: stream, link: link)
    }

    public func addGuestChannel(uuid: String) async throws(HypervisorError) {
        try await withConnection("add guest channel") { connection throws(VirtError) in
            let domain = try connection.domain(uuid: uuid)
            var impact: DomainModificationImpact = [.live]
            if try domain.isPersistent() { impact.insert(.config) }
            try domain.attachDevice(xml: GuestChannelDevice.xml, impact: impact)
        }
    }
}

/// A ``ChannelStream`` as a ``GuestPort``; sends and the close run on the channels executor.
final class LibvirtGuestPort: GuestPort {
    let stream: ChannelStream
    let link: LibvirtLink

    init(stream: ChannelStream, link: LibvirtLink) {
        self.stream = stream
        self.link = link
    }

    func receive(maxBytes: Int) -> GuestPortRead {
        switch stream.receive(maxBytes: maxBytes) {
        case .bytes(let bytes): .bytes(bytes)
        case .wouldBlock: .wouldBlock
        case .end: .end
        }
    }

    func send(_ bytes: [UInt8]) async throws(HypervisorError) {
        let stream = self.stream
        try await link.runOnChannels("send to guest channel") { _ throws(VirtError) in try stream.send(bytes) }
    }

    func close() async {
        let stream = self.stream
        _ = try? await link.runOnChannels("close guest channel") { _ throws(VirtError) in stream.close() }
    }
}
