import Testing

@testable import XML

/// Hostile and broken input: refused with an error saying what and where, never expanded,
/// never a crash, nothing printed.
@Suite("XML reader: secure options and limits")
struct XMLReaderRefusalTests {
    /// The kind of error `text` is refused with (`nil` when it is accepted).
    static func refusal(_ text: String, limits: XMLLimits = XMLLimits()) -> XMLError? {
        do {
            _ = try XMLReader.parse(text, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    /// Ten levels of ten references each: 10^10 copies of "lol" if anything expanded them.
    static let billionLaughs =
        "<!DOCTYPE l [<!ENTITY l0 \"lol\">"
        + (1...10).map { level in
            "<!ENTITY l\(level) \"" + String(repeating: "&l\(level - 1);", count: 10) + "\">"
        }.joined() + "]><l>&l10;</l>"

    @Test(
        "a DOCTYPE is refused, entities never expanded or loaded",
        arguments: [
            billionLaughs,
            "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>",
            "<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/evil.dtd\"><a/>",
            "<!DOCTYPE a><a/>",
            "<!-- hi --><!doctype a><a/>",
            "<!ENTITY x 'y'><a/>",
        ])
    func doctypeRefused(_ text: String) throws {
        let error = try #require(Self.refusal(text))
        #expect(error.kind == .doctype, "\(error)")
        #expect(error.line >= 1)
        #expect(error.message.contains("DOCTYPE"))
    }

    @Test("after the first error nothing more is read: a DTD behind a broken declaration included")
    func stopsAtTheFirstError() throws {
        // Found by scripts/fuzz (LeakSanitizer): libxml2 went on with its callbacks off, read the
        // DTD and built a document of its own for its entities, which nobody freed.
        let text = "<?xml veInton=\"1.0\"?>\n<!DOCTYPE l [<!ENTITY l \"l\"><!ENTITY m\u{7FF}\"&l;\">]>\n<a>&m;</a>"
        let error = try #require(Self.refusal(text))
        #expect(error.kind == .malformed(code: 96), "\(error)")
        #expect(error.line == 1)
        let billion = try #require(Self.refusal("<?xml veInton=\"1.0\"?>" + Self.billionLaughs))
        #expect(billion.kind == .malformed(code: 96), "\(billion)")
    }

    @Test("an entity reference without a DTD is an error, not expanded")
    func undeclaredEntity() throws {
        let error = try #require(Self.refusal("<a>\n<b>&xxe;</b></a>"))
        #expect(error.kind == .malformed(code: 26))
        #expect(error.line == 2)
        #expect(error.message.contains("undeclared entity"))
        let inAttribute = try #require(Self.refusal("<a b='&xxe;'/>"))
        #expect(inAttribute.message.contains("undeclared entity"))
    }

    @Test("too deep: refused at the limit, with the line; libxml2's own limit is 256")
    func tooDeep() throws {
        let nested =
            (1...10).map { "<e\($0)>" }.joined(separator: "\n") + (1...10).reversed().map { "</e\($0)>" }.joined()
        let error = try #require(Self.refusal(nested, limits: XMLLimits(maxDepth: 8)))
        #expect(error.kind == .tooDeep(limit: 8))
        #expect(error.line == 9)
        #expect(error.description == "line 9: elements are nested deeper than 8 levels")
        #expect(Self.refusal(nested, limits: XMLLimits(maxDepth: 10)) == nil)
        let deepest = String(repeating: "<a>", count: 256) + String(repeating: "</a>", count: 256)
        #expect(Self.refusal(deepest) == nil)
        let tooDeep = String(repeating: "<a>", count: 100_000) + String(repeating: "</a>", count: 100_000)
        #expect(Self.refusal(tooDeep)?.kind == .tooDeep(limit: 256))
    }

    @Test("too large: refused before parsing")
    func tooLarge() throws {
        let text = "<a>" + String(repeating: "x", count: 2000) + "</a>"
        let error = try #require(Self.refusal(text, limits: XMLLimits(maxBytes: 1024)))
        #expect(error.kind == .tooLarge(bytes: 2007, limit: 1024))
        #expect(error.description == "the document is 2007 bytes, more than the limit of 1024")
        #expect(Self.refusal(text, limits: XMLLimits(maxBytes: 2007)) == nil)
    }

    @Test("too many elements")
    func tooManyElements() throws {
        let text = "<a>" + String(repeating: "<b/>", count: 10) + "</a>"
        #expect(Self.refusal(text, limits: XMLLimits(maxElements: 10))?.kind == .tooManyElements(limit: 10))
        #expect(Self.refusal(text, limits: XMLLimits(maxElements: 11)) == nil)
    }

    @Test("invalid UTF-8, NUL bytes, empty input: refused with the line")
    func invalidBytes() throws {
        var bytes = Array("<a>\n".utf8)
        bytes += [0xC3, 0x28]
        bytes += Array("</a>".utf8)
        let utf8 = try #require(Self.refusalOf(bytes))
        #expect(utf8.kind == .invalidUTF8 && utf8.line == 2)
        #expect(Self.refusalOf(Array("<a>".utf8) + [0xED, 0xA0, 0x80] + Array("</a>".utf8))?.kind == .invalidUTF8)
        #expect(Self.refusalOf(Array("<a>x\0y</a>".utf8))?.kind == .nulByte)
        #expect(Self.refusal("")?.kind == .empty)
        #expect(Self.refusal(" \n\t")?.kind == .empty)
    }

    static func refusalOf(_ bytes: [UInt8]) -> XMLError? {
        do {
            _ = try XMLReader.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test(
        "malformed documents: libxml2's error with line and column",
        arguments: [
            ("<a><b></a>", 76), ("<a>", 77), ("<a/><b/>", 5), ("<a x='1' x='2'/>", 42), ("text", 4),
            ("<p:a/>", 201), ("<a>&#0;</a>", 9),
        ])
    func malformed(_ text: String, code: Int) throws {
        let error = try #require(Self.refusal(text))
        #expect(error.kind == .malformed(code: code), "\(error)")
        #expect(error.line == 1 && error.column > 0, "\(error)")
        #expect(error.message.hasPrefix("not well-formed XML: "))
    }
}
