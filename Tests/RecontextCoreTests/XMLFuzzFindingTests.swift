import Foundation
import Testing

@testable import RecontextCore

/// Inputs the fuzzer (`scripts/fuzz`, issue 6) found crashing: a processing instruction without
/// data (`<?x?>`) made Foundation's `XMLParser` on Linux dereference NULL. libvirt keeps such an
/// instruction in a domain's metadata, so `virsh metadata VM --set '<context><?x?></context>'`
/// crashed recontextd. They must parse (or be refused) without crashing, with the libxml2 reader too.
@Suite("XML: crashes found by fuzzing stay fixed")
struct XMLFuzzFindingTests {
    static let domain = DomainIdentity(name: "vm", uuid: "0b9e4a2c-3f1d-4c5e-8a7b-9c0d1e2f3a4b")

    @Test(
        "processing instructions without data",
        arguments: [
            "<context><?x?><var name=\"a\">b</var></context>",
            "<?x?><context/>",
            "<context><?x?></context>",
            "<context><var name=\"a\">b<?pi?></var><?a?><?b?></context>",
            "<?xmxmcoStriString?>\u{11}\"eN\to", // the fuzzer's own input
            "<context><?x?>", // truncated
            "<context><?x",
        ])
    func dataLessProcessingInstruction(_ xml: String) {
        _ = try? ContextMetadata.parse(xml, domain: Self.domain, limits: .default)
    }

    @Test("a data-less instruction is skipped; the content around it is kept")
    func contentAroundInstruction() throws {
        let spec = try ContextMetadata.parse(
            "<context><?x?><var name=\"a\">b<?y?>c</var><?p?><?q?></context>", domain: Self.domain, limits: .default)
        #expect(spec.variables.first?.value == "bc")
    }
}
