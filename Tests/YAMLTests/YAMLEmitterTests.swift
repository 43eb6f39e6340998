import Testing

@testable import YAML

@Suite("YAML emitter: exact output and round trips")
struct YAMLEmitterTests {
    static func scalar(_ text: String, _ style: YAMLNode.ScalarStyle = .plain) -> YAMLNode {
        .scalar(YAMLNode.Scalar(text, style: style, tag: .str))
    }

    static func mapping(_ pairs: [(YAMLNode, YAMLNode)], style: YAMLNode.CollectionStyle = .block) -> YAMLNode {
        .mapping(YAMLNode.Mapping(pairs, style: style))
    }

    @Test("a meta-data-like tree, byte for byte: block style, two-space indent, no document markers")
    func exactOutput() throws {
        let tree = Self.mapping([
            (Self.scalar("instance-id"), Self.scalar("i-1", .doubleQuoted)),
            (Self.scalar("local-hostname"), Self.scalar("web1", .doubleQuoted)),
            (
                Self.scalar("recontext"),
                Self.mapping([
                    (Self.scalar("domain"), Self.mapping([(Self.scalar("name"), Self.scalar("web1", .doubleQuoted))])),
                    (Self.scalar("variables"), Self.mapping([])),
                    (Self.scalar("yes", .doubleQuoted), Self.scalar("it's", .singleQuoted)),
                    (Self.scalar("list"), .sequence(YAMLNode.Sequence([Self.scalar("a"), .sequence(.init([]))]))),
                    (Self.scalar("flow"), Self.mapping([(Self.scalar("k"), Self.scalar("v"))], style: .flow)),
                    (Self.scalar("text"), Self.scalar("one\ntwo\n", .literal)),
                ])
            ),
        ])
        let expected = """
            instance-id: "i-1"
            local-hostname: "web1"
            recontext:
              domain:
                name: "web1"
              variables: {}
              "yes": 'it''s'
              list:
              - a
              - []
              flow: {k: v}
              text: |
                one
                two

            """
        #expect(try YAMLEmitter.emit(tree) == expected)
    }

    static let awkwardValues = [
        "yes", "no", "on", "null", "~", "123", "0x1F", "1e3", "true", ": colon", "#hash", "- dash", "{braces}",
        "[list]", "multi\nline\n", "'single' \"double\"", "   spaces   ", "back\\slash", "tab\there", "café 😀", "",
        "*alias", "&anchor", "!tag", "%percent", "@at", "a\0b", "\u{7}bell", "\u{85}nel", "\u{2028}ls", "\u{FEFF}bom",
        "trailing\n\n", "\r\n", "日本語", "key: value", "a #b", "- ", "?", "-", "---", "...", "'", "\"", "\\", "\u{1F600}",
        String(repeating: "long words ", count: 40),
    ]

    @Test(
        "every text reads back exactly, in every style asked for, as a key and as a value",
        arguments: awkwardValues, YAMLNode.ScalarStyle.allCases)
    func roundTrip(text: String, style: YAMLNode.ScalarStyle) throws {
        let tree = Self.mapping([
            (Self.scalar("value"), Self.scalar(text, style)),
            (Self.scalar(text, style), Self.scalar("key")),
        ])
        let yaml = try YAMLEmitter.emit(tree)
        let read = try #require(try YAMLReader.compose(yaml))
        let pairs = try #require(read.mapping)
        #expect(pairs.count == 2, "\(yaml)")
        #expect(pairs.first?.value.scalar?.text == text, "\(yaml)")
        #expect(pairs.last?.key.scalar?.text == text, "\(yaml)")
        if style != .plain {
            // A quoted or block scalar (or the quoted one libyaml falls back to) is a string.
            #expect(pairs.first?.value.tag == .str, "\(yaml)")
        }
    }

    @Test(
        "YAML 1.1 special words: plain they read back as what they mean, double-quoted as strings",
        arguments: ["yes", "No", "on", "OFF", "true", "False", "null", "~", "", "1e3", "0x1F", "0640", "2001-12-14"])
    func specialWords(word: String) throws {
        let tree = Self.mapping([
            (Self.scalar("plain"), Self.scalar(word)), (Self.scalar("quoted"), Self.scalar(word, .doubleQuoted)),
        ])
        let read = try #require(try YAMLReader.compose(try YAMLEmitter.emit(tree)))
        #expect(read["plain"]?.tag == YAMLTag.resolvingPlain(word))
        #expect(read["plain"]?.tag != .str)
        #expect(read["quoted"]?.tag == .str)
        #expect(read["quoted"]?.scalar?.text == word)
    }

    @Test("Unicode is written as it is; only what YAML cannot print is escaped")
    func unicode() throws {
        let yaml = try YAMLEmitter.emit(
            Self.mapping([(Self.scalar("a"), Self.scalar("café 日本語 😀 \u{7}", .doubleQuoted))]))
        #expect(yaml == "a: \"café 日本語 \\U0001F600 \\a\"\n")
    }

    @Test("quotes, backslashes and line breaks in double quotes")
    func escapes() throws {
        let yaml = try YAMLEmitter.emit(
            Self.mapping([(Self.scalar("a"), Self.scalar("say \"hi\"\\\n\ttab", .doubleQuoted))]))
        #expect(yaml == "a: \"say \\\"hi\\\"\\\\\\n\\ttab\"\n")
    }

    @Test("long lines are never folded")
    func unlimitedWidth() throws {
        let long = String(repeating: "word ", count: 100) + "end"
        let yaml = try YAMLEmitter.emit(
            Self.mapping([(Self.scalar("a"), Self.scalar(long, .doubleQuoted)), (Self.scalar("b"), Self.scalar(long))]))
        #expect(yaml == "a: \"\(long)\"\nb: \(long)\n")
    }

    @Test("a scalar or a sequence can be the root")
    func otherRoots() throws {
        #expect(try YAMLEmitter.emit(Self.scalar("x", .doubleQuoted)) == "\"x\"\n")
        #expect(try YAMLEmitter.emit(.sequence(.init([Self.scalar("a"), Self.scalar("b")]))) == "- a\n- b\n")
        #expect(try YAMLEmitter.emit(.sequence(.init([Self.scalar("a")], style: .flow))) == "[a]\n")
    }
}
