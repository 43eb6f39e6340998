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
    .realPart(missing: LibvirtTestHost.skipReason))
struct LiveDeviceTests {
    /// A running firmware-only VM on the shared test host with one CD-ROM holding `old.iso`, plus
    /// `new.iso` beside it; an event collector started before the VM was defined. Destroys and
    /// undefines the VM, closes the connection and removes the images when released.
    final class RunningVM {
        let directory: String
        let connection: Connection
        let events: EventCollector
        let domain: Domain
        var old: String { directory + "/old.iso" }
        var new: String { directory + "/new.iso" }

        init(_ label: String, bus: LibvirtTestHost.CDROM.Bus, target: String) async throws {
            let host = try await SharedLibvirtHost.shared.get()
            directory = try TestDirectories.makeImageDirectory(label)
            try TestDirectories.writeMedia(directory + "/old.iso", tag: "old")
            try TestDirectories.writeMedia(directory + "/new.iso", tag: "new")
            connection = try Connection.open(host.uri)
            events = EventCollector(try connection.events())
            let name = "virt-\(bus.rawValue)-\(UUID().uuidString.prefix(8).lowercased())"
            let xml = LibvirtTestHost.minimalDomainXML(
                name: name, cdroms: [.init(bus: bus, target: target, source: directory + "/old.iso")],
                type: LibvirtTestHost.preferredDomainType)
            domain = try connection.defineDomain(xml: xml)
            try domain.start()
        }

        deinit {
            try? domain.destroy()
            try? domain.undefine()
            connection.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test(
        "a running VM's CD-ROM media is changed to a new image, live and persistent, with tray events",
        arguments: [
            (LibvirtTestHost.CDROM.Bus.sata, "sda"), (.ide, "hdc"), (.scsi, "sda"),
        ])
    func mediaChange(bus: LibvirtTestHost.CDROM.Bus, target: String) async throws {
        let vm = try await RunningVM("media-\(bus.rawValue)", bus: bus, target: target)
        defer { withExtendedLifetime(vm) {} } // cleaned up at the end of the test, not at last use
        let domain = vm.domain
        let old = vm.old
        let new = vm.new
        let events = vm.events
        #expect(try domain.state().state == .running)

        let cdrom = try #require(try domain.cdroms().first)
        #expect(cdrom.sourceFile == old)
        #expect(cdrom.bus == bus.rawValue)
        #expect(cdrom.alias != nil)

        try domain.updateDevice(xml: cdrom.xml(source: new), impact: [.live, .config])

        #expect(try domain.cdroms().first?.sourceFile == new)
        #expect(try domain.cdroms(inactive: true).first?.sourceFile == new)
        let kinds = await events.waitUntil(domain: domain.uuid) {
            $0 == .trayChange(deviceAlias: cdrom.alias ?? "", .close)
        }
        let trays = kinds.compactMap { kind -> TrayChange? in
            if case .trayChange(_, let change) = kind { return change }
            return nil
        }
        #expect(trays == [.open, .close], "events: \(kinds)")
        #expect(kinds.contains(.lifecycle(.started(.booted))))
    }

    @Test(
        "a tray opened in QEMU through libvirt's monitor passthrough: QEMU's tray event reaches libvirt's record",
        arguments: [(LibvirtTestHost.CDROM.Bus.sata, "sda"), (.ide, "hdc"), (.scsi, "sda")])
    func openTrayInQEMU(bus: LibvirtTestHost.CDROM.Bus, target: String) async throws {
        let vm = try await RunningVM("open-tray-\(bus.rawValue)", bus: bus, target: target)
        defer { withExtendedLifetime(vm) {} } // cleaned up at the end of the test, not at last use
        let domain = vm.domain
        let cdrom = try #require(try domain.cdroms().first)
        let alias = try #require(cdrom.alias)
        #expect(cdrom.tray == nil)

        try domain.openTrayInQEMU(deviceID: alias)
        let kinds = await vm.events.waitUntil(domain: domain.uuid) { $0 == .trayChange(deviceAlias: alias, .open) }
        #expect(kinds.contains(.trayChange(deviceAlias: alias, .open)), "events: \(kinds)")
        #expect(try domain.cdroms().first?.tray == "open")
        let reply = try domain.qemuMonitorCommand(#"{"execute":"query-status"}"#)
        #expect(reply.contains(#""return""#), "\(reply)")

        // Only a device id goes into the command: nothing that could end the JSON string.
        for bad in ["", #"x","force":false}}"#, "ide0 1"] {
            #expect(throws: VirtError.self) { try domain.openTrayInQEMU(deviceID: bad) }
        }
        // An unknown device is QEMU's error, passed on.
        let error = try #require(throws: VirtError.self) { try domain.openTrayInQEMU(deviceID: "no-such-drive") }
        #expect(error.message.contains("no-such-drive"), "\(error)")
    }

    @Test("a SCSI CD-ROM is detached and attached again with a new image, with device events")
    func scsiDetachAttach() async throws {
        let vm = try await RunningVM("scsi-replace", bus: .scsi, target: "sdb")
        defer { withExtendedLifetime(vm) {} } // cleaned up at the end of the test, not at last use
        let domain = vm.domain
        let old = vm.old
        let new = vm.new
        let events = vm.events
        let cdrom = try #require(try domain.cdroms().first)
        let alias = try #require(cdrom.alias)
        #expect(cdrom.address["type"] == "drive")

        try domain.detachDevice(xml: cdrom.xml(source: old), impact: [.live])
        let afterDetach = await events.waitUntil(domain: domain.uuid, timeout: .seconds(30)) {
            $0 == .deviceRemoved(deviceAlias: alias)
        }
        #expect(afterDetach.contains(.deviceRemoved(deviceAlias: alias)), "events: \(afterDetach)")
        #expect(try domain.cdroms().isEmpty)

        try domain.attachDevice(xml: cdrom.xml(source: new), impact: [.live])
        let afterAttach = await events.waitUntil(domain: domain.uuid, timeout: .seconds(30)) {
            if case .deviceAdded = $0 { true } else { false }
        }
        #expect(afterAttach.contains { if case .deviceAdded = $0 { true } else { false } }, "events: \(afterAttach)")
        let attached = try #require(try domain.cdroms().first)
        #expect(attached.sourceFile == new)
        #expect(attached.target == "sdb")
        #expect(attached.address == cdrom.address)
    }

    @Test("detaching a SATA CD-ROM or hot-plugging one is refused as a permanent error")
    func sataHotplugRefused() async throws {
        let vm = try await RunningVM("sata-hotplug", bus: .sata, target: "sda")
        defer { withExtendedLifetime(vm) {} } // cleaned up at the end of the test, not at last use
        let domain = vm.domain
        let old = vm.old
        let cdrom = try #require(try domain.cdroms().first)

        let detach = try #require(throws: VirtError.self) {
            try domain.detachDevice(xml: cdrom.xml(source: old), impact: [.live])
        }
        #expect(!detach.isTransient, "\(detach)")
        var other = cdrom
        other.target = "sdc"
        other.address = [:]
        let attach = try #require(throws: VirtError.self) {
            try domain.attachDevice(xml: other.xml(source: old), impact: [.live])
        }
        #expect(!attach.isTransient, "\(attach)")
        #expect(try domain.cdroms().map(\.sourceFile) == [old])
    }

    @Test("metadata set live and config on a running domain; the change event names the namespace")
    func liveMetadata() async throws {
        let vm = try await RunningVM("metadata", bus: .sata, target: "sda")
        defer { withExtendedLifetime(vm) {} } // cleaned up at the end of the test, not at last use
        let domain = vm.domain
        let events = vm.events
        let namespace = "urn:recontextd:virt-test:1"
        try domain.setMetadata("<context managed='yes'/>", key: "rc", namespace: namespace, impact: [.live, .config])
        #expect(try domain.metadata(namespace: namespace, impact: .live)?.contains("managed") == true)
        #expect(try domain.metadata(namespace: namespace, impact: .config)?.contains("managed") == true)
        let kinds = await events.waitUntil(domain: domain.uuid) {
            $0 == .metadataChange(.element, namespace: namespace)
        }
        #expect(kinds.contains(.metadataChange(.element, namespace: namespace)), "events: \(kinds)")
    }
}
