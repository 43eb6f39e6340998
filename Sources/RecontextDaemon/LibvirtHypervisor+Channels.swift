import RecontextCore
import Virt

/// The guest channel over libvirt: `virDomainOpenChannel` on a stream of the channels connection
/// (a third connection, so a guest's traffic never waits behind the pipeline's calls, and the
/// pipeline's never behind a guest's), its calls on that connection's own executor.
extension LibvirtHypervisor: GuestPortOpener {
    /// libvirt's `VIR_ERR_NO_SUPPORT`.
    static let noSupport = VirtError.Code.noSupport.rawValue

    public func openGuestPort(uuid: String, onEvent: @escaping @Sendable (GuestPortEvent) -> Void)
        async throws(HypervisorError) -> any GuestPort
    {
        let link = try link(for: "open guest channel")
        do {
            let stream = try await link.runOnChannels("open guest channel") { connection throws(VirtError) in
                let domain = try connection.domain(uuid: uuid)
                return try ChannelStream.open(domain, channel: GuestProtocol.portName, force: true) { event in
                    onEvent(event == .readable ? .readable : .ended)
                }
            }
            return LibvirtGuestPort(stream: stream, link: link)
        } catch  where error.message.contains("cannot find channel") {
            // libvirt says VIR_ERR_INTERNAL_ERROR; for recontextd the domain just has no port.
            throw HypervisorError(.unsupported, operation: error.operation, message: error.message, code: error.code)
        } catch  where error.code == Self.noSupport {
            // The driver has no channels at all (e.g. libvirt's test driver).
            throw HypervisorError(
                .permanent, operation: error.operation,
                message: "the libvirt driver cannot open guest channels: \(error.message)", code: error.code)
        }
    }

    public func addGuestChannel(uuid: String) async throws(HypervisorError) -> GuestChannelAddition {
        try await withConnection("add guest channel") { connection throws(VirtError) -> GuestChannelAddition in
            let domain = try connection.domain(uuid: uuid)
            let persistent = try domain.isPersistent()
            do throws(VirtError) {
                try domain.attachDevice(xml: GuestChannelDevice.xml, impact: persistent ? [.live, .config] : [.live])
                return .live
            } catch  where persistent && error.message.contains("virtio-serial") {
                // "no virtio-serial controllers are available", and libvirt 9.0 cannot hot-plug
                // one: the definition takes the channel (and the controller) for the next boot.
                try domain.attachDevice(xml: GuestChannelDevice.xml, impact: [.config])
                return .nextBoot
            }
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

    var isOpen: Bool { !link.isRetired }

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
