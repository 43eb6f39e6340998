import Foundation
import TestSupport
import Testing

@testable import RecontextCore

@Suite("Context metadata: parsing libvirt-shaped XML and round trips")
struct ContextMetadataTests {
    @Test("libvirt's re-serialized element: prefixed root, prefixed and unprefixed children")
    func parsesLibvirtShapedXML() throws {
        let spec = try Fixtures.parse(Fixtures.libvirtXML)
        #expect(spec.managed)
        #expect(spec.format == .noCloud)
        #expect(spec.instanceID == .perHost)
        #expect(spec.hostname == "web-1")
        #expect(
            spec.variables == [
                VariableSpec(name: "role", value: "web"),
                VariableSpec(name: "db_password", value: "p'a\"ss$word\\", secret: true),
            ]
        )
        try #require(spec.files.count == 2)
        #expect(spec.files[0].path == "etc/app.conf")
        #expect(spec.files[0].mode == 0o640)
        #expect(spec.files[0].isTemplate)
        #expect(spec.files[0].content == .text("endpoint={{host.monitoring_endpoint}}\nrole={{vm.role}}\n"))
        #expect(
            spec.files[1]
                == FileSpec(path: "bin/tool", content: .bytes(Array("#!/bin/sh\necho hi\n".utf8)), mode: 0o755))
        #expect(spec.userData == .text("#cloud-config\nntp: {servers: [\"{{host.ntp_server}}\"]}\n", isTemplate: true))
        #expect(spec.networkConfig == .text("version: 2\nethernets: {eth0: {dhcp4: true}}\n"))
        #expect(spec.vendorData == nil)
        #expect(spec.device == nil)
        #expect(spec.volumeID == nil)
    }

    @Test("the element as a user gives it to virsh: no namespace at all")
    func parsesUnprefixed() throws {
        let spec = try Fixtures.parse(#"<context format="configdrive" device="sdz"><var name="a">1</var></context>"#)
        #expect(spec.managed)
        #expect(spec.format == .configDrive)
        #expect(spec.device == "sdz")
        #expect(spec.variables == [VariableSpec(name: "a", value: "1")])
    }

    @Test("a default namespace declaration on the root is accepted")
    func parsesDefaultNamespace() throws {
        let spec = try Fixtures.parse(
            #"<context xmlns="urn:recontextd:context:1" managed="no"><file path="a">x</file></context>"#)
        #expect(!spec.managed)
        #expect(spec.files == [FileSpec(path: "a", content: .text("x"))])
    }

    @Test("an XML declaration, comments and CDATA")
    func parsesDeclarationCommentsAndCDATA() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- set by ops -->
            <context>
              <!-- the app -->
              <file path="index.html"><![CDATA[<!DOCTYPE html><p>a & b</p>]]></file>
              <var name="x">a<!-- c -->b</var>
            </context>
            """
        let spec = try Fixtures.parse(xml)
        #expect(spec.files.first?.content == .text("<!DOCTYPE html><p>a & b</p>"))
        #expect(spec.variable(named: "x")?.value == "ab")
    }

    @Test("values keep whitespace, newlines, quotes and non-ASCII text exactly")
    func keepsValuesExactly() throws {
        let xml =
            "<context><var name=\"v\">  two\n lines\t&amp; &lt;tags&gt; 'single' \"double\" café 😀  </var></context>"
        let spec = try Fixtures.parse(xml)
        #expect(spec.variable(named: "v")?.value == "  two\n lines\t& <tags> 'single' \"double\" café 😀  ")
    }

    @Test("the files format with its own volume id")
    func parsesFilesVolumeID() throws {
        let spec = try Fixtures.parse(#"<context format="files" volume-id="MYDATA"/>"#)
        #expect(spec.format == .files)
        #expect(spec.volumeID == "MYDATA")
        #expect(spec.variables.isEmpty && spec.files.isEmpty)
    }

    @Test(
        "booleans accept yes/no, true/false, 1/0",
        arguments: [("yes", true), ("no", false), ("true", true), ("false", false), ("1", true), ("0", false)]
    )
    func booleans(text: String, value: Bool) throws {
        let spec = try Fixtures.parse(
            "<context managed=\"\(text)\"><var name=\"s\" secret=\"\(text)\">x</var></context>")
        #expect(spec.managed == value)
        #expect(spec.variables.first?.secret == value)
    }

    @Test("a spec survives serialize then parse unchanged")
    func roundTrip() throws {
        let spec = try Fixtures.parse(Fixtures.libvirtXML)
        let again = try Fixtures.parse(ContextMetadata.serialize(spec))
        #expect(again == spec)
    }

    @Test("round trip of awkward content: CR, control characters, ]]>, bytes, every attribute")
    func roundTripAwkwardContent() throws {
        let spec = ContextSpec(
            managed: false,
            format: .files,
            instanceID: .stable,
            hostname: "a.b-c",
            variables: [
                VariableSpec(name: "crlf", value: "line\r\nnext\r"),
                VariableSpec(name: "ctl", value: "bell\u{07}esc\u{1B}", secret: true),
                VariableSpec(name: "markup", value: "]]> <x a=\"1\"/> &amp;"),
                VariableSpec(name: "empty", value: ""),
            ],
            files: [
                FileSpec(path: "bin/blob", content: .bytes([0, 1, 2, 255, 254, 10]), mode: 0o700),
                FileSpec(path: "t/tpl", content: .text("{{host.name}}\n"), isTemplate: true, mode: 0o600),
                FileSpec(path: "dir with space/ünïcode.txt", content: .text("  leading and trailing  \n\n")),
            ],
            userData: .text("#cloud-config\n{}\n", isTemplate: true),
            networkConfig: DocumentSpec(content: .bytes([0xFF, 0x00])),
            vendorData: .text("vendor"),
            device: "hdc",
            volumeID: "VOL_1"
        )
        let xml = ContextMetadata.serialize(spec)
        #expect(try Fixtures.parse(xml) == spec)
    }

    @Test("the serialized form is what a user passes to virsh: no namespace declaration")
    func serializedShape() {
        let xml = ContextMetadata.serialize(
            ContextSpec(format: .noCloud, variables: [VariableSpec(name: "a", value: "<1>")]))
        #expect(xml == "<context managed=\"yes\" format=\"nocloud\">\n  <var name=\"a\">&lt;1&gt;</var>\n</context>")
    }

    @Test("parsing bytes refuses invalid UTF-8")
    func invalidUTF8() throws {
        var bytes = Array("<context><var name=\"a\">".utf8)
        bytes += [0xC3, 0x28]
        bytes += Array("</var></context>".utf8)
        let error = Fixtures.expectContextError {
            _ = try ContextMetadata.parse(utf8: bytes, domain: Fixtures.domain, limits: .default)
        }
        #expect(error?.code == .malformedXML)
        #expect(error?.description.contains("UTF-8") == true)
        let good = try ContextMetadata.parse(
            utf8: Array("<context><var name=\"a\">é</var></context>".utf8),
            domain: Fixtures.domain,
            limits: .default
        )
        #expect(good.variable(named: "a")?.value == "é")
    }

    @Test("many parses in parallel give the same result")
    func parallelParses() async throws {
        let expected = try Fixtures.parse(Fixtures.libvirtXML)
        let results = await withTaskGroup(of: ContextSpec?.self) { group in
            for _ in 0..<64 {
                group.addTask { try? Fixtures.parse(Fixtures.libvirtXML) }
            }
            var all: [ContextSpec?] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 64)
        #expect(results.allSatisfy { $0 == expected })
    }

    /// Resident memory in bytes, from /proc (Linux only).
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * 4096
    }

    @Test(
        "parsing does not leak: 5000 parses keep resident memory flat",
        .realPart(missing: FileManager.default.fileExists(atPath: "/proc/self/statm") ? nil : "needs /proc/self/statm"))
    func noLeak() throws {
        for _ in 0..<500 { _ = try Fixtures.parse(Fixtures.libvirtXML) }
        let before = try #require(Self.residentBytes())
        for _ in 0..<5000 { _ = try Fixtures.parse(Fixtures.libvirtXML) }
        let after = try #require(Self.residentBytes())
        // XMLDocument leaked about 19 KB per parse (95 MB here); allow noise from tests running alongside.
        #expect(after - before < 32 << 20, "grew by \(after - before) bytes")
    }
}
