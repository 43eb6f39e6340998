import Foundation
import TestSupport
import Testing

@testable import Virt

/// Device work against a real libvirtd with QEMU, started by the tests (see `LibvirtTestHost`).
///
/// libvirt's test driver cannot attach, detach or update devices, so these run on the real thing:
/// firmware-only VMs (no OS disk; they sit in SeaBIOS) with SATA, IDE and SCSI CD-ROMs.
@Suite(
    "real libvirtd: CD-ROM media change, detach and attach",
    .enabled(if: LibvirtTestHost.isAvailable, "\(LibvirtTestHost.skipReason ?? "")"))
struct LiveDeviceTests {
    static func define(
        _ host: LibvirtTestHost, _ connection: Connection, bus: LibvirtTestHost.CDROM.Bus, target: String,
        source: String
    ) throws -> Domain {
        let name = "virt-\(bus.rawValue)-\(UUID().uuidString.prefix(8).lowercased())"
        let xml = LibvirtTestHost.minimalDomainXML(
            name: name, cdroms: [.init(bus: bus, target: target, source: source)],
            type: LibvirtTestHost.preferredDomainType)
        return try connection.defineDomain(xml: xml)
    }

    static func cleanUp(_ domain: Domain) {
        try? domain.destroy()
        try? domain.undefine()
    }

    @Test(
        "a running VM's CD-ROM media is changed to a new image, live and persistent, with tray events",
        arguments: [
            (LibvirtTestHost.CDROM.Bus.sata, "sda"), (.ide, "hdc"), (.scsi, "sda"),
        ])
    func mediaChange(bus: LibvirtTestHost.CDROM.Bus, target: String) async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let directory = try TestDirectories.makeImageDirectory("media-\(bus.rawValue)")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let old = directory + "/old.iso"
        let new = directory + "/new.iso"
        try TestDirectories.writeMedia(old, tag: "old")
        try TestDirectories.writeMedia(new, tag: "new")

        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        let events = EventCollector(try connection.events())
        let domain = try Self.define(host, connection, bus: bus, target: target, source: old)
        defer { Self.cleanUp(domain) }
        try domain.start()
        #expect(try domain.state().state == .running)

        let cdrom = try #require(try domain.cdroms().first)
        #expect(cdrom.sourceFile == old)
        #expect(cdrom.bus == bus.rawValue)
        #expect(cdrom.alias != nil)

        try domain.updateDevice(xml: cdrom.xml(source: new), impact: [.live, .config])

        #expect(try domain.cdroms().first?.sourceFile == new)
        #expect(try domain.cdroms(inactive: true).first?.sourceFile == new)
        let kinds = await events.waitUntil(domain: domain.uuid) { $0 == .trayChange(deviceAlias: cdrom.alias ?? "", .close) }
        let trays = kinds.compactMap { kind -> TrayChange? in
            if case .trayChange(_, let change) = kind { return change }
            return nil
        }
        #expect(trays == [.open, .close], "events: \(kinds)")
        #expect(kinds.contains(.lifecycle(.started(.booted))))
    }

    @Test("a SCSI CD-ROM is detached and attached again with a new image, with device events")
    func scsiDetachAttach() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let directory = try TestDirectories.makeImageDirectory("scsi-replace")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let old = directory + "/old.iso"
        let new = directory + "/new.iso"
        try TestDirectories.writeMedia(old, tag: "old")
        try TestDirectories.writeMedia(new, tag: "new")

        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        let events = EventCollector(try connection.events())
        let domain = try Self.define(host, connection, bus: .scsi, target: "sdb", source: old)
        defer { Self.cleanUp(domain) }
        try domain.start()
        let cdrom = try #require(try domain.cdroms().first)
        let alias = try #require(cdrom.alias)
        #expect(cdrom.address["type"] == "drive")

        try domain.detachDevice(xml: cdrom.xml(source: old), impact: [.live])
        let afterDetach = await events.waitUntil(domain: domain.uuid, timeout: .seconds(30)) { $0 == .deviceRemoved(deviceAlias: alias) }
        #expect(afterDetach.contains(.deviceRemoved(deviceAlias: alias)), "events: \(afterDetach)")
        #expect(try domain.cdroms().isEmpty)

        try domain.attachDevice(xml: cdrom.xml(source: new), impact: [.live])
        let afterAttach = await events.waitUntil(domain: domain.uuid, timeout: .seconds(30)) { if case .deviceAdded = $0 { true } else { false } }
        #expect(afterAttach.contains { if case .deviceAdded = $0 { true } else { false } }, "events: \(afterAttach)")
        let attached = try #require(try domain.cdroms().first)
        #expect(attached.sourceFile == new)
        #expect(attached.target == "sdb")
        #expect(attached.address == cdrom.address)
    }

    @Test("detaching a SATA CD-ROM or hot-plugging one is refused as a permanent error")
    func sataHotplugRefused() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let directory = try TestDirectories.makeImageDirectory("sata-hotplug")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let old = directory + "/old.iso"
        try TestDirectories.writeMedia(old, tag: "old")
        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        let domain = try Self.define(host, connection, bus: .sata, target: "sda", source: old)
        defer { Self.cleanUp(domain) }
        try domain.start()
        let cdrom = try #require(try domain.cdroms().first)

        let detach = try #require(throws: VirtError.self) { try domain.detachDevice(xml: cdrom.xml(source: old), impact: [.live]) }
        #expect(!detach.isTransient, "\(detach)")
        var other = cdrom
        other.target = "sdc"
        other.address = [:]
        let attach = try #require(throws: VirtError.self) { try domain.attachDevice(xml: other.xml(source: old), impact: [.live]) }
        #expect(!attach.isTransient, "\(attach)")
        #expect(try domain.cdroms().map(\.sourceFile) == [old])
    }

    @Test("metadata set live and config on a running domain; the change event names the namespace")
    func liveMetadata() async throws {
        let host = try await SharedLibvirtHost.shared.get()
        let directory = try TestDirectories.makeImageDirectory("metadata")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let old = directory + "/old.iso"
        try TestDirectories.writeMedia(old, tag: "old")
        let connection = try Connection.open(host.uri)
        defer { connection.close() }
        let events = EventCollector(try connection.events())
        let domain = try Self.define(host, connection, bus: .sata, target: "sda", source: old)
        defer { Self.cleanUp(domain) }
        try domain.start()
        let namespace = "urn:recontextd:virt-test:1"
        try domain.setMetadata("<context managed='yes'/>", key: "rc", namespace: namespace, impact: [.live, .config])
        #expect(try domain.metadata(namespace: namespace, impact: .live)?.contains("managed") == true)
        #expect(try domain.metadata(namespace: namespace, impact: .config)?.contains("managed") == true)
        let kinds = await events.waitUntil(domain: domain.uuid) { $0 == .metadataChange(.element, namespace: namespace) }
        #expect(kinds.contains(.metadataChange(.element, namespace: namespace)), "events: \(kinds)")
    }
}
