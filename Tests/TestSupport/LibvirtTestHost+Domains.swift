import Foundation
import XML

// MARK: - Minimal domains

extension LibvirtTestHost {
    /// One CD-ROM drive of a ``LibvirtTestHost/minimalDomainXML(name:uuid:cdroms:type:memoryMiB:)``.
    public struct CDROM: Sendable, Hashable {
        /// The bus: SATA and IDE drives cannot be hot-plugged; SCSI (virtio-scsi) ones can.
        public enum Bus: String, Sendable, CaseIterable {
            case sata, ide, scsi
        }

        /// The bus of the drive.
        public var bus: Bus
        /// Target device name: `sda` (SATA, SCSI), `hdc` (IDE).
        public var target: String
        /// Image path, or `nil` for an empty drive.
        public var source: String?
        /// `startupPolicy` of the source (`"optional"` lets a VM start or arrive without the file).
        public var startupPolicy: String?

        /// A drive on `bus` at `target` holding `source`.
        public init(bus: Bus, target: String, source: String?, startupPolicy: String? = nil) {
            self.bus = bus
            self.target = target
            self.source = source
            self.startupPolicy = startupPolicy
        }
    }

    /// XML of the smallest useful VM: 128 MiB, 1 vCPU, no OS disk (it sits in SeaBIOS), no USB,
    /// no balloon, and the given read-only CD-ROM drives.
    ///
    /// The machine is `pc` (i440FX) when any drive is on IDE, which q35 lacks, else `q35`; a
    /// virtio-scsi controller is added when any drive is on SCSI.
    ///
    /// - Parameters:
    ///   - name: domain name.
    ///   - uuid: domain UUID, or `nil` to let libvirt choose.
    ///   - cdroms: the drives, e.g. `[.init(bus: .sata, target: "sda", source: "/srv/ctx-1.iso")]`.
    ///   - type: `"kvm"`, or `"qemu"` (TCG) where there is no usable `/dev/kvm`.
    ///   - memoryMiB: guest memory.
    public static func minimalDomainXML(
        name: String, uuid: UUID? = nil, cdroms: [CDROM], type: String = "kvm", memoryMiB: Int = 128
    ) -> String {
        let machine = cdroms.contains { $0.bus == .ide } ? "pc" : "q35"
        var xml = "<domain type='\(escape(type))'>\n"
        xml += "  <name>\(escape(name))</name>\n"
        if let uuid { xml += "  <uuid>\(uuid.uuidString.lowercased())</uuid>\n" }
        xml += "  <memory unit='MiB'>\(memoryMiB)</memory>\n"
        xml += "  <vcpu>1</vcpu>\n"
        xml += "  <os>\n    <type arch='x86_64' machine='\(machine)'>hvm</type>\n  </os>\n"
        xml += "  <devices>\n"
        if cdroms.contains(where: { $0.bus == .scsi }) {
            xml += "    <controller type='scsi' model='virtio-scsi'/>\n"
        }
        for cdrom in cdroms {
            xml += "    <disk type='file' device='cdrom'>\n"
            xml += "      <driver name='qemu' type='raw'/>\n"
            if let source = cdrom.source {
                let policy = cdrom.startupPolicy.map { " startupPolicy='\(escape($0))'" } ?? ""
                xml += "      <source file='\(escape(source))'\(policy)/>\n"
            }
            xml += "      <target dev='\(escape(cdrom.target))' bus='\(cdrom.bus.rawValue)'/>\n"
            xml += "      <readonly/>\n"
            xml += "    </disk>\n"
        }
        xml += "    <controller type='usb' model='none'/>\n"
        xml += "    <memballoon model='none'/>\n"
        xml += "  </devices>\n"
        xml += "</domain>\n"
        return xml
    }

    private static func escape(_ text: String) -> String {
        XMLEscaping.attribute(text)
    }
}
