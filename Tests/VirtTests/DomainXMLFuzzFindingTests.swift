import Foundation
import Testing

@testable import Virt

/// A domain XML whose metadata holds a processing instruction without data (libvirt keeps it; any
/// user allowed to set a VM's metadata can put it there) crashed Foundation's `XMLParser` on
/// Linux. Found by fuzzing (issue 6); the libxml2 reader must read it.
@Suite("Domain XML: a data-less processing instruction in metadata")
struct DomainXMLFuzzFindingTests {
    @Test("the CD-ROMs are read; nothing crashes")
    func processingInstructionInMetadata() throws {
        let xml = """
            <domain type='kvm'><name>vm</name><metadata><recontext:context xmlns:recontext="urn:recontextd:context:1">\
            <?x?></recontext:context><other:x xmlns:other="urn:o"><?y?></other:x></metadata>\
            <devices><disk type='file' device='cdrom'><source file='/srv/a.iso'/><target dev='sda' bus='sata'/></disk></devices></domain>
            """
        let cdroms = try DomainXML.cdroms(in: xml)
        #expect(cdroms.map(\.sourceFile) == ["/srv/a.iso"])
    }
}
