import Testing

@testable import XML

/// The reader on well-formed input: names, namespaces, attributes, text, lines, byte ranges.
@Suite("XML reader: what a document reads as")
struct XMLReaderTests {
    @Test("names, namespaces, attributes and text")
    func tree() throws {
        let root = try XMLReader.parse(
            """
            <?xml version="1.0"?>
            <r:context xmlns:r="urn:r" xmlns="urn:d" a="1" r:b="2" xml:lang="en">
              <var name="x">one &amp; two &lt;&gt; &#x41;&#66;<![CDATA[<raw & text>]]></var>
              <r:file/>
            </r:context>
            """)
        #expect(root.name == "context" && root.prefix == "r" && root.namespaceURI == "urn:r")
        #expect(root.qualifiedName == "r:context")
        #expect(root.attributes.map(\.qualifiedName) == ["a", "r:b", "xml:lang"])
        #expect(root.attribute("r:b") == "2")
        #expect(root.attributes[1].namespaceURI == "urn:r")
        #expect(root.attributes[0].namespaceURI == "")
        #expect(root.children.map(\.qualifiedName) == ["var", "r:file"])
        let variable = root.children[0]
        #expect(variable.namespaceURI == "urn:d")
        #expect(variable.text == "one & two <> AB<raw & text>")
        #expect(variable.line == 3)
        #expect(root.line == 2)
        #expect(root.text.allSatisfy { $0.isWhitespace })
    }

    @Test("attribute values are decoded and normalised as libxml2 reports them")
    func attributeValues() throws {
        let root = try XMLReader.parse(
            "<a x='1\t2\r\n3' y=\"&#x41;&#66;&lt;&gt;\" z='&quot;&apos;&amp;' w='&amp;#38; &#38;amp;'><b/></a>")
        #expect(root.attribute("x") == "1 2 3")
        #expect(root.attribute("y") == "AB<>")
        #expect(root.attribute("z") == "\"'&")
        #expect(root.attribute("w") == "&#38; &amp;")
    }

    @Test("byte ranges span each element exactly, BOM and CRLF included")
    func byteRanges() throws {
        let text = "\u{FEFF}<a>\r\n  <b k='v'\r\n     l='w'/>\r\n  <c >t</c >\r\n</a>\r\n"
        let bytes = Array(text.utf8)
        let root = try XMLReader.parse(bytes)
        func slice(_ element: XMLElement) -> String { String(decoding: bytes[element.byteRange], as: UTF8.self) }
        #expect(slice(root).hasPrefix("<a>") && slice(root).hasSuffix("</a>"))
        #expect(slice(root.children[0]) == "<b k='v'\r\n     l='w'/>")
        #expect(slice(root.children[1]) == "<c >t</c >")
        #expect(root.children.map(\.line) == [2, 4])
    }

    @Test("byte ranges stay exact past libxml2's input buffer (a large document)")
    func byteRangesInALargeDocument() throws {
        let filler = String(repeating: "x", count: 300_000)
        let text = "<a><x y='1'>\(filler)</x>\n  <b k='v'/></a>"
        let bytes = Array(text.utf8)
        let root = try XMLReader.parse(bytes)
        #expect(String(decoding: bytes[root.children[1].byteRange], as: UTF8.self) == "<b k='v'/>")
        #expect(root.children[0].text.count == filler.count)
    }

    @Test("processing instructions (with or without data) and comments are skipped")
    func processingInstructions() throws {
        let root = try XMLReader.parse("<?x?><a><?y?>b<!-- c --><?z data?>d<e/><?w?></a><?v?>")
        #expect(root.text == "bd")
        #expect(root.children.map(\.name) == ["e"])
    }

    @Test("an encoding declaration is ignored: the bytes are UTF-8")
    func encodingDeclarationIgnored() throws {
        let root = try XMLReader.parse("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>é</a>")
        #expect(root.text == "é")
    }

    @Test("the escaper's output reads back as the original text")
    func escapingRoundTrip() throws {
        let value = "a&b<c>d\"e'f\tg\nh\ri 😀"
        let root = try XMLReader.parse(
            "<a x='\(XMLEscaping.attribute(value))' y=\"\(XMLEscaping.attribute(value))\">\(XMLEscaping.text(value))</a>"
        )
        #expect(root.attribute("x") == value)
        #expect(root.attribute("y") == value)
        #expect(root.text == value)
        #expect(XMLEscaping.text("<1>") == "&lt;1&gt;")
        #expect(XMLEscaping.isRepresentable("a\tb") && !XMLEscaping.isRepresentable("a\u{1}b"))
    }

    @Test("parses from many threads at once give the same tree")
    func concurrentParses() async throws {
        let text = "<a>" + (0..<200).map { "<v n='\($0)'>\($0)</v>" }.joined() + "</a>"
        let expected = try XMLReader.parse(text)
        try await withThrowingTaskGroup(of: XMLElement.self) { group in
            for _ in 0..<16 { group.addTask { try XMLReader.parse(text) } }
            for try await root in group { #expect(root == expected) }
        }
    }
}
