import Testing

@testable import YAML

@Suite("YAML reader: the tree, marks, styles, tags and nulls")
struct YAMLReaderTests {
    static func compose(_ text: String) throws -> YAMLNode {
        try #require(try YAMLReader.compose(text))
    }

    @Test("a mapping keeps its pairs in order, with 1-based marks on every node")
    func marks() throws {
        let root = try Self.compose("# comment\nb: 1\na:\n  - x\n  - {k: v}\n")
        let mapping = try #require(root.mapping)
        #expect(mapping.map { $0.key.scalar?.text } == ["b", "a"])
        #expect(root.mark == YAMLMark(line: 2, column: 1))
        #expect(mapping[0].key.mark == YAMLMark(line: 2, column: 1))
        #expect(mapping[0].value.mark == YAMLMark(line: 2, column: 4))
        let list = try #require(root["a"]?.sequence)
        #expect(list.mark == YAMLMark(line: 4, column: 3))
        #expect(list[0].mark == YAMLMark(line: 4, column: 5))
        #expect(list[1].mark == YAMLMark(line: 5, column: 5))
        #expect(list[1].mapping?.style == .flow)
        #expect(list[1]["k"]?.mark == YAMLMark(line: 5, column: 9))
        #expect(root.tag == .map && list.tag == .seq)
    }

    @Test("columns count characters, not bytes")
    func unicodeColumns() throws {
        let root = try Self.compose("é😀: x\n")
        #expect(root["é😀"]?.mark == YAMLMark(line: 1, column: 5))
    }

    @Test("scalar styles and their text")
    func styles() throws {
        let root = try Self.compose(
            "p: plain text\ns: 'it''s'\nd: \"a\\tb\\u00e9\\0\"\nl: |\n  one\n  two\nf: >\n  one\n  two\n")
        let expected: [(String, YAMLNode.ScalarStyle, String)] = [
            ("p", .plain, "plain text"), ("s", .singleQuoted, "it's"), ("d", .doubleQuoted, "a\tbé\0"),
            ("l", .literal, "one\ntwo\n"), ("f", .folded, "one two\n"),
        ]
        for (key, style, text) in expected {
            let scalar = try #require(root[key]?.scalar, "\(key)")
            #expect(scalar.style == style, "\(key)")
            #expect(scalar.text == text, "\(key)")
            #expect(scalar.tag == .str, "\(key)")
        }
    }

    @Test(
        "plain scalars resolve as YAML 1.1 does",
        arguments: [
            ("yes", YAMLTag.bool), ("No", .bool), ("OFF", .bool), ("y", .str), ("true", .bool), ("tRue", .str),
            ("0", .int), ("-17", .int), ("+1_000", .int), ("0b1010", .int), ("0o17", .int), ("017", .int),
            ("0x1F", .int), ("1:30", .int), ("190:20:30", .int), ("09", .float), ("0b", .str), ("0x", .str),
            ("1.5", .float), ("1e3", .float), ("1E+3", .float), (".5", .float), (".5e+3", .float), (".5e3", .str),
            ("-.inf", .float), (".NaN", .float), ("-.nan", .str), ("1.", .float), ("1:30.5", .float), ("+.5", .str),
            ("1e", .str), ("<<", .merge), ("=", .value), ("", .null), ("~", .null), ("null", .null), ("Null", .null),
            ("NULL", .null), ("nULL", .str), ("2001-12-14", .timestamp), ("2001-1-1", .str),
            ("2001-12-14t21:59:43.10-05:00", .timestamp), ("2001-12-14 21:59:43.10 -5", .timestamp),
            ("2001-12-15T02:59:43.1Z", .timestamp), ("2001-12-14 21:59:43.10 ", .str), ("café", .str),
            ("0640", .int), ("16MiB", .str), ("30s", .str),
        ])
    func plainTags(text: String, tag: YAMLTag) {
        #expect(YAMLTag.resolvingPlain(text) == tag)
    }

    @Test("quoted and block scalars are strings; an explicit tag wins")
    func explicitTags() throws {
        let root = try Self.compose("a: '1'\nb: \"yes\"\nc: !!str 1\nd: !!int '3'\ne: ! 12\nf: !local x\ng: |\n  1\n")
        #expect(root["a"]?.tag == .str)
        #expect(root["b"]?.tag == .str)
        #expect(root["c"]?.tag == .str)
        #expect(root["d"]?.tag == .int)
        #expect(root["e"]?.tag == .str)
        #expect(root["f"]?.tag == YAMLTag("!local"))
        #expect(root["g"]?.tag == .str)
    }

    @Test("nulls: a plain empty value, ~ and null in its three casings; never a quoted one")
    func nulls() throws {
        let root = try Self.compose("a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: ''\ng: \"null\"\nh: nul\ni: !!null ''\n")
        let nulls = try #require(root.mapping).filter(\.value.isNull).compactMap { $0.key.scalar?.text }
        #expect(nulls == ["a", "b", "c", "d", "e", "i"])
        #expect(root["a"]?.scalar?.text == "")
        #expect(root["a"]?.scalar?.style == .plain)
    }

    @Test("no document is nil; an empty document is a null scalar")
    func emptyTexts() throws {
        #expect(try YAMLReader.compose("") == nil)
        #expect(try YAMLReader.compose("# nothing\n\n") == nil)
        let empty = try Self.compose("---\n")
        #expect(empty.isNull)
        #expect(empty.mark == YAMLMark(line: 2, column: 1))
    }

    @Test("an alias is a copy of its anchored node, which keeps its own mark")
    func aliases() throws {
        let root = try Self.compose("base: &b {x: 1}\nother: *b\nlist: [&s one, *s]\n")
        #expect(root["other"] == root["base"])
        #expect(root["other"]?.mark == YAMLMark(line: 1, column: 7))
        #expect(root["list"]?.sequence?.map { $0.scalar?.text } == ["one", "one"])
    }

    @Test("a mapping subscript finds the first key with that text; others are nil")
    func subscripts() throws {
        let root = try Self.compose("a: 1\n")
        #expect(root["a"]?.scalar?.text == "1")
        #expect(root["b"] == nil)
        #expect(root["a"]?["x"] == nil)
        #expect(root.sequence == nil && root.scalar == nil)
    }

    @Test("a leading byte-order mark is skipped; CR LF line breaks are read")
    func bomAndCRLF() throws {
        let root = try Self.compose("\u{FEFF}a: 1\r\nb: 2\r\n")
        #expect(root.mapping?.map(\.key.mark) == [YAMLMark(line: 1, column: 1), YAMLMark(line: 2, column: 1)])
        #expect(root["b"]?.scalar?.text == "2")
    }
}
