import Foundation
import Testing

@testable import RecontextCore

/// One input the parser must refuse, and how.
struct HostileInput: Sendable, CustomTestStringConvertible {
    var name: String
    var xml: String
    var code: ContextError.Code
    var field: String
    var message: String
    var limits: MetadataLimits = .default

    var testDescription: String { name }
}

@Suite("Context metadata: hostile and broken input is refused with a clear error")
struct MetadataHostileInputTests {
    static func wrap(_ body: String, attributes: String = "") -> String {
        "<recontext:context xmlns:recontext=\"urn:recontextd:context:1\"\(attributes)>\(body)</recontext:context>"
    }

    static let billionLaughs = """
        <?xml version="1.0"?>
        <!DOCTYPE lolz [
          <!ENTITY lol "lol">
          <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
          <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
        ]>
        <context><var name="a">&lol3;</var></context>
        """

    static let cases: [HostileInput] = [
        // Paths
        HostileInput(
            name: "path traversal",
            xml: wrap(#"<file path="../etc/passwd">x</file>"#),
            code: .unsafePath,
            field: "file[1].path",
            message: "\"..\""
        ),
        HostileInput(
            name: "traversal in the middle",
            xml: wrap(#"<file path="a">1</file><file path="a2/../../b">x</file>"#),
            code: .unsafePath,
            field: "file[2].path",
            message: "\"..\""
        ),
        HostileInput(
            name: "absolute path",
            xml: wrap(#"<file path="/etc/shadow">x</file>"#),
            code: .unsafePath,
            field: "file[1].path",
            message: "relative"
        ),
        HostileInput(
            name: "empty component",
            xml: wrap(#"<file path="a//b">x</file>"#),
            code: .unsafePath,
            field: "file[1].path",
            message: "empty component"
        ),
        HostileInput(
            name: "trailing slash",
            xml: wrap(#"<file path="a/">x</file>"#),
            code: .unsafePath,
            field: "file[1].path",
            message: "empty component"
        ),
        HostileInput(
            name: "dot component", xml: wrap(#"<file path="./a">x</file>"#), code: .unsafePath, field: "file[1].path",
            message: "\".\""),
        HostileInput(
            name: "backslash", xml: wrap(#"<file path="a\..\b">x</file>"#), code: .unsafePath, field: "file[1].path",
            message: "backslash"),
        HostileInput(
            name: "control character in path",
            xml: wrap(#"<file path="a&#9;b">x</file>"#),
            code: .unsafePath,
            field: "file[1].path",
            message: "control"
        ),
        HostileInput(
            name: "empty path", xml: wrap(#"<file path="">x</file>"#), code: .missing, field: "file[1].path",
            message: "empty"),
        HostileInput(
            name: "missing path", xml: wrap(#"<file>x</file>"#), code: .missing, field: "file[1].path",
            message: "path attribute"),
        HostileInput(
            name: "reserved recontext/ directory",
            xml: wrap(#"<file path="recontext/generation.json">x</file>"#),
            code: .duplicate,
            field: "file[1].path",
            message: "reserved"
        ),
        HostileInput(
            name: "path too long",
            xml: wrap("<file path=\"\(String(repeating: "a", count: 256))\">x</file>"),
            code: .limitExceeded,
            field: "file[1].path",
            message: "longer than 255"
        ),
        HostileInput(
            name: "path too deep",
            xml: wrap(#"<file path="1/2/3/4/5/6/7/8/9">x</file>"#),
            code: .limitExceeded,
            field: "file[1].path",
            message: "deeper than 8"
        ),
        HostileInput(
            name: "duplicate path",
            xml: wrap(#"<file path="a/b">1</file><file path="a/b">2</file>"#),
            code: .duplicate,
            field: "file[2].path",
            message: "twice"
        ),
        HostileInput(
            name: "file that is also a directory",
            xml: wrap(#"<file path="a">1</file><file path="a/b">2</file>"#),
            code: .duplicate,
            field: "file[1].path",
            message: "directory"
        ),
        // DTDs, entities, encoding
        HostileInput(name: "billion laughs", xml: billionLaughs, code: .forbiddenDTD, field: "", message: "DOCTYPE"),
        HostileInput(
            name: "external entity",
            xml:
                "<!DOCTYPE context [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><context><var name=\"a\">&xxe;</var></context>",
            code: .forbiddenDTD,
            field: "",
            message: "DOCTYPE"
        ),
        HostileInput(
            name: "lower-case doctype after a comment",
            xml: "<!-- hi --><!doctype context><context/>",
            code: .forbiddenDTD,
            field: "",
            message: "DOCTYPE"
        ),
        HostileInput(
            name: "undeclared entity",
            xml: wrap(#"<var name="a">&xxe;</var>"#),
            code: .malformedXML,
            field: "",
            message: "undeclared entity"
        ),
        HostileInput(
            name: "NUL byte", xml: wrap("<var name=\"a\">x\u{0}y</var>"), code: .malformedXML, field: "", message: "NUL"
        ),
        HostileInput(
            name: "NUL character reference",
            xml: wrap(#"<var name="a">x&#0;y</var>"#),
            code: .malformedXML,
            field: "",
            message: "character"
        ),
        HostileInput(
            name: "not well-formed", xml: "<context><var name=\"a\">x</context>", code: .malformedXML, field: "",
            message: "line 1"),
        HostileInput(name: "empty document", xml: "", code: .malformedXML, field: "", message: "empty"),
        // Limits
        HostileInput(
            name: "too deep",
            xml: wrap(
                "<file path=\"a\">" + String(repeating: "<x>", count: 10) + String(repeating: "</x>", count: 10)
                    + "</file>"),
            code: .limitExceeded,
            field: "",
            message: "deeper than 8"
        ),
        HostileInput(
            name: "too many files",
            xml: wrap((1...4).map { "<file path=\"f\($0)\">x</file>" }.joined()),
            code: .limitExceeded,
            field: "file[4]",
            message: "more than 3 files",
            limits: MetadataLimits(maxFiles: 3)
        ),
        HostileInput(
            name: "too many variables",
            xml: wrap((1...3).map { "<var name=\"v\($0)\">x</var>" }.joined()),
            code: .limitExceeded,
            field: "var[3]",
            message: "more than 2 variables",
            limits: MetadataLimits(maxVariables: 2)
        ),
        HostileInput(
            name: "too many elements altogether",
            xml: wrap(String(repeating: "<var name=\"v\">x</var>", count: 40)),
            code: .limitExceeded,
            field: "",
            message: "elements",
            limits: MetadataLimits(maxFiles: 2, maxVariables: 2)
        ),
        HostileInput(
            name: "oversized metadata",
            xml: wrap("<var name=\"a\">\(String(repeating: "x", count: 2000))</var>"),
            code: .limitExceeded,
            field: "",
            message: "more than the limit of 1024",
            limits: MetadataLimits(maxMetadataBytes: 1024)
        ),
        HostileInput(
            name: "oversized file",
            xml: wrap("<file path=\"big\">\(String(repeating: "x", count: 101))</file>"),
            code: .limitExceeded,
            field: "file[1]",
            message: "101 bytes",
            limits: MetadataLimits(maxFileBytes: 100)
        ),
        HostileInput(
            name: "oversized base64 file",
            xml: wrap(
                "<file path=\"big\" encoding=\"base64\">\(Data(repeating: 7, count: 101).base64EncodedString())</file>"),
            code: .limitExceeded,
            field: "file[1]",
            message: "101 bytes",
            limits: MetadataLimits(maxFileBytes: 100)
        ),
        HostileInput(
            name: "total size",
            xml: wrap((1...3).map { "<file path=\"f\($0)\">\(String(repeating: "x", count: 60))</file>" }.joined()),
            code: .limitExceeded,
            field: "file[2]",
            message: "all content together",
            limits: MetadataLimits(maxFileBytes: 100, maxTotalBytes: 100)
        ),
        // Types
        HostileInput(
            name: "mode is not octal",
            xml: wrap(#"<file path="a" mode="rw">x</file>"#),
            code: .invalidValue,
            field: "file[1].mode",
            message: "octal mode"
        ),
        HostileInput(
            name: "mode has an 8",
            xml: wrap(#"<file path="a" mode="0648">x</file>"#),
            code: .invalidValue,
            field: "file[1].mode",
            message: "\"0648\""
        ),
        HostileInput(
            name: "setuid mode",
            xml: wrap(#"<file path="a" mode="4755">x</file>"#),
            code: .invalidValue,
            field: "file[1].mode",
            message: "at most 0777"
        ),
        HostileInput(
            name: "unknown format",
            xml: wrap("", attributes: #" format="cloudinit""#),
            code: .invalidValue,
            field: "format",
            message: "nocloud, configdrive, opennebula, files"
        ),
        HostileInput(
            name: "unknown instance-id policy",
            xml: wrap("", attributes: #" instance-id="random""#),
            code: .invalidValue,
            field: "instance-id",
            message: "stable or per-host"
        ),
        HostileInput(
            name: "bad boolean",
            xml: wrap("", attributes: #" managed="maybe""#),
            code: .invalidValue,
            field: "managed",
            message: "yes or no"
        ),
        HostileInput(
            name: "bad template flag",
            xml: wrap(#"<file path="a" template="sure">x</file>"#),
            code: .invalidValue,
            field: "file[1].template",
            message: "yes or no"
        ),
        HostileInput(
            name: "bad hostname",
            xml: wrap("", attributes: #" hostname="web_1""#),
            code: .invalidValue,
            field: "hostname",
            message: "labels"
        ),
        HostileInput(
            name: "bad device",
            xml: wrap("", attributes: #" device="/dev/sdz""#),
            code: .invalidValue,
            field: "device",
            message: "target device"
        ),
        HostileInput(
            name: "volume id with nocloud",
            xml: wrap("", attributes: #" format="nocloud" volume-id="X""#),
            code: .unsupportedByFormat,
            field: "volume-id",
            message: "files"
        ),
        HostileInput(
            name: "volume id too long",
            xml: wrap("", attributes: " format=\"files\" volume-id=\"\(String(repeating: "V", count: 33))\""),
            code: .invalidValue,
            field: "volume-id",
            message: "32"
        ),
        HostileInput(
            name: "bad base64",
            xml: wrap(#"<file path="a" encoding="base64">!!not base64!!</file>"#),
            code: .invalidValue,
            field: "file[1]",
            message: "base64"
        ),
        HostileInput(
            name: "unknown encoding",
            xml: wrap(#"<file path="a" encoding="hex">00</file>"#),
            code: .invalidValue,
            field: "file[1].encoding",
            message: "text or base64"
        ),
        HostileInput(
            name: "template that is not UTF-8",
            xml: wrap(#"<file path="a" template="yes" encoding="base64">/w==</file>"#),
            code: .invalidValue,
            field: "file[1]",
            message: "UTF-8"
        ),
        // Names and structure
        HostileInput(
            name: "variable name starting with a digit",
            xml: wrap(#"<var name="1abc">x</var>"#),
            code: .invalidValue,
            field: "var[1].name",
            message: "[A-Za-z_]"
        ),
        HostileInput(
            name: "variable name with a dot",
            xml: wrap(#"<var name="a.b">x</var>"#),
            code: .invalidValue,
            field: "var[1].name",
            message: "[A-Za-z_]"
        ),
        HostileInput(
            name: "reserved variable name",
            xml: wrap(#"<var name="uuid">x</var>"#),
            code: .invalidValue,
            field: "var[1].name",
            message: "reserved"
        ),
        HostileInput(
            name: "variable without a name", xml: wrap(#"<var>x</var>"#), code: .missing, field: "var[1].name",
            message: "name attribute"),
        HostileInput(
            name: "over-long variable name",
            xml: wrap("<var name=\"\(String(repeating: "n", count: 129))\">x</var>"),
            code: .invalidValue,
            field: "var[1].name",
            message: "longer than 128"
        ),
        HostileInput(
            name: "duplicate variable",
            xml: wrap(#"<var name="a">1</var><var name="a">2</var>"#),
            code: .duplicate,
            field: "var[a]",
            message: "twice"
        ),
        HostileInput(
            name: "unknown attribute on the root",
            xml: wrap("", attributes: #" colour="red""#),
            code: .unknownAttribute,
            field: "colour",
            message: "allowed: managed"
        ),
        HostileInput(
            name: "unknown attribute on a file",
            xml: wrap(#"<file path="a" owner="root">x</file>"#),
            code: .unknownAttribute,
            field: "file[1].owner",
            message: "allowed: path"
        ),
        HostileInput(
            name: "prefixed attribute",
            xml: wrap(#"<var name="a" recontext:secret="yes">x</var>"#),
            code: .unknownAttribute,
            field: "var[1].recontext:secret",
            message: "unknown attribute"
        ),
        HostileInput(
            name: "unknown element",
            xml: wrap(#"<script>rm -rf /</script>"#),
            code: .unknownElement,
            field: "script",
            message: "allowed: var, file"
        ),
        HostileInput(
            name: "element in a foreign namespace",
            xml: wrap(#"<o:var xmlns:o="urn:other" name="a">x</o:var>"#),
            code: .unknownElement,
            field: "var[1]",
            message: "urn:other"
        ),
        HostileInput(
            name: "element inside a variable",
            xml: wrap(#"<var name="a"><b>x</b></var>"#),
            code: .unknownElement,
            field: "var[a]",
            message: "<b>"
        ),
        HostileInput(
            name: "text directly in the root", xml: wrap("stray text"), code: .unknownElement, field: "",
            message: "text directly inside"),
        HostileInput(
            name: "two user-data",
            xml: wrap("<user-data>a</user-data><user-data>b</user-data>"),
            code: .duplicate,
            field: "user-data",
            message: "twice"
        ),
        HostileInput(name: "wrong root", xml: "<domain/>", code: .wrongRoot, field: "", message: "<domain>"),
        HostileInput(
            name: "root in a foreign namespace",
            xml: #"<x:context xmlns:x="urn:other"/>"#,
            code: .wrongRoot,
            field: "",
            message: "urn:other"
        ),
    ]

    @Test("refused", arguments: cases)
    func refused(_ input: HostileInput) {
        let error = Fixtures.expectContextError { _ = try Fixtures.parse(input.xml, limits: input.limits) }
        guard let error else { return }
        #expect(error.code == input.code, "\(error)")
        #expect(error.field == input.field, "\(error)")
        #expect(error.message.contains(input.message), "\(error)")
        #expect(error.domain == "web1")
        #expect(error.description.hasPrefix("domain web1: "), "\(error)")
    }

    @Test("a secret value never appears in an error")
    func secretsStayOutOfErrors() {
        let secret = "hunter2-very-secret"
        let inputs = [
            Self.wrap("<var name=\"pw\" secret=\"yes\" encoding=\"base64\">\(secret)!</var>"),
            Self.wrap("<var name=\"pw\" secret=\"yes\">\(secret)</var><var name=\"pw\" secret=\"yes\">\(secret)</var>"),
            Self.wrap("<var name=\"pw\" secret=\"yes\">\(String(repeating: secret, count: 10))</var>"),
        ]
        for xml in inputs {
            let error = Fixtures.expectContextError {
                _ = try Fixtures.parse(xml, limits: MetadataLimits(maxFileBytes: 100))
            }
            #expect(error != nil)
            #expect(error?.description.contains("hunter2") == false, "\(String(describing: error))")
        }
    }

    @Test("a DOCTYPE inside CDATA is content, not a DTD")
    func doctypeInContentIsFine() throws {
        let spec = try Fixtures.parse(Self.wrap("<file path=\"x.html\"><![CDATA[<!DOCTYPE html>]]></file>"))
        #expect(spec.files.first?.content == .text("<!DOCTYPE html>"))
    }

    @Test("a billion-laughs document is refused every time, never expanded")
    func refusedEveryTime() {
        for _ in 0..<100 {
            #expect(throws: ContextError.self) { try Fixtures.parse(Self.billionLaughs) }
        }
    }
}
