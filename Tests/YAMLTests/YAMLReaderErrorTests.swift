import Testing

@testable import YAML

/// Broken and hostile input: refused with an error saying what and where, never a crash.
@Suite("YAML reader: errors, duplicate keys and limits")
struct YAMLReaderErrorTests {
    /// The error `text` is refused with (`nil` when it is accepted).
    static func refusal(_ text: String, limits: YAMLLimits = YAMLLimits()) -> YAMLError? {
        do {
            _ = try YAMLReader.compose(text, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test("a scanner error carries libyaml's problem, its mark and its context")
    func scannerError() throws {
        let error = try #require(Self.refusal("images:\n  mode: \"0640\n  group: x\n"))
        #expect(error.kind == .scanner)
        #expect(error.message == "found unexpected end of stream")
        #expect(error.mark == YAMLMark(line: 4, column: 1))
        #expect(error.context == "while scanning a quoted scalar")
        #expect(error.contextMark == YAMLMark(line: 2, column: 9))
        #expect(
            error.description
                == "line 4, column 1: found unexpected end of stream (while scanning a quoted scalar at line 2, column 9)"
        )
    }

    @Test(
        "scanner and parser errors",
        arguments: [
            ("a:\n\tb: 1\n", YAMLError.Kind.scanner, 2, 1, "found character that cannot start any token"),
            ("a: [1, 2\n", .parser, 2, 1, "did not find expected ',' or ']'"),
            ("- a\nb: 1\n", .parser, 2, 1, "did not find expected '-' indicator"),
            ("a: b: c\n", .scanner, 1, 5, "mapping values are not allowed in this context"),
            ("@foo\n", .scanner, 1, 1, "found character that cannot start any token"),
            ("a:\n  - b\n  -c\n - d\n", .scanner, 4, 2, "could not find expected ':'"),
        ])
    func syntaxErrors(text: String, kind: YAMLError.Kind, line: Int, column: Int, message: String) throws {
        let error = try #require(Self.refusal(text))
        #expect(error.kind == kind, "\(error)")
        #expect(error.mark == YAMLMark(line: line, column: column), "\(error)")
        #expect(error.message == message)
    }

    @Test("a control character is a reader error, with its place")
    func readerError() throws {
        let error = try #require(Self.refusal("a: 1\nb: x\u{1}\n"))
        #expect(error.kind == .reader)
        #expect(error.message == "control characters are not allowed")
        #expect(error.mark == YAMLMark(line: 2, column: 5))
        let nul = try #require(Self.refusal("a: b\0c\n"))
        #expect(nul.kind == .reader)
    }

    @Test("a key given twice is refused at its first occurrence")
    func duplicateKey() throws {
        let error = try #require(Self.refusal("images:\n  mode: \"0640\"\n  mode: \"0600\"\n"))
        #expect(error.kind == .duplicateKeys(keys: ["mode"]))
        #expect(error.mark == YAMLMark(line: 2, column: 3))
        #expect(error.message == "a mapping has the key mode more than once")
    }

    @Test("every key given twice is named, sorted; the mark is the first occurrence of the first")
    func duplicateKeys() throws {
        let error = try #require(Self.refusal("z: 1\nb: 2\nz: 3\nb: 4\n"))
        #expect(error.kind == .duplicateKeys(keys: ["b", "z"]))
        #expect(error.mark == YAMLMark(line: 2, column: 1))
        #expect(error.message == "a mapping has the keys b, z more than once")
    }

    @Test(
        "keys are the same when their text and resolved tag are",
        arguments: [
            ("a: 1\n'a': 2\n", true), ("a: 1\n\"a\": 2\n", true), ("1: x\n'1': y\n", false),
            ("yes: 1\n'yes': 2\n", false), ("{a: 1, a: 2}\n", true), ("? [a, b]\n: 1\n? [a, b]\n: 2\n", true),
            ("? [a, b]\n: 1\n? [a, c]\n: 2\n", false), ("a: 1\nA: 2\n", false), ("1: x\n01: y\n", false),
        ])
    func keyIdentity(text: String, duplicate: Bool) {
        let error = Self.refusal(text)
        if duplicate {
            guard case .duplicateKeys = error?.kind else {
                Issue.record("expected a duplicate key error, got \(String(describing: error))")
                return
            }
        } else {
            #expect(error == nil)
        }
    }

    @Test("a duplicate inside a nested mapping is found where it is")
    func nestedDuplicate() throws {
        let error = try #require(Self.refusal("a:\n  b:\n    c: 1\n    c: 2\n"))
        #expect(error.kind == .duplicateKeys(keys: ["c"]))
        #expect(error.mark == YAMLMark(line: 3, column: 5))
    }

    @Test("a second document is refused at its start")
    func secondDocument() throws {
        let error = try #require(Self.refusal("a: 1\n---\nb: 2\n"))
        #expect(error.kind == .multipleDocuments)
        #expect(error.mark == YAMLMark(line: 2, column: 1))
        #expect(error.message == "but found another document")
    }

    @Test("an alias without an anchor before it is refused; so is an alias inside its own anchor")
    func undefinedAliases() throws {
        let missing = try #require(Self.refusal("a: *x\n"))
        #expect(missing.kind == .undefinedAlias(name: "x"))
        #expect(missing.mark == YAMLMark(line: 1, column: 4))
        #expect(missing.message == "found undefined alias")
        let recursive = try #require(Self.refusal("a: &x [1, *x]\n"))
        #expect(recursive.kind == .undefinedAlias(name: "x"))
    }

    /// Ten levels of ten aliases each: 10^10 nodes if they were walked.
    static let billionLaughs =
        "l0: &l0 [lol]\n"
        + (1...9).map { level in
            "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }.joined()

    @Test("aliases count with every node they repeat")
    func billionLaughsRefused() throws {
        let error = try #require(Self.refusal(Self.billionLaughs))
        #expect(error.kind == .tooManyNodes(limit: YAMLLimits().maxNodes))
        #expect(error.mark != nil)
        // 8 nodes before the aliases (the root, two keys, two sequences, three items), 4 for each.
        let text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
        let first = try #require(Self.refusal(text, limits: YAMLLimits(maxNodes: 11)))
        #expect(first.kind == .tooManyNodes(limit: 11))
        #expect(first.mark == YAMLMark(line: 2, column: 5))
        let second = try #require(Self.refusal(text, limits: YAMLLimits(maxNodes: 15)))
        #expect(second.mark == YAMLMark(line: 2, column: 9))
        #expect(Self.refusal(text, limits: YAMLLimits(maxNodes: 16)) == nil)
    }

    @Test("nesting is bounded: 64 levels are read, 65 refused at the node that goes too deep")
    func depth() throws {
        // The root mapping is level 1, its value's brackets the levels below.
        func nested(_ levels: Int) -> String {
            "a: " + String(repeating: "[", count: levels - 2) + "x" + String(repeating: "]", count: levels - 2) + "\n"
        }
        #expect(Self.refusal(nested(64)) == nil)
        let error = try #require(Self.refusal(nested(65)))
        #expect(error.kind == .tooDeep(limit: 64))
        #expect(error.mark == YAMLMark(line: 1, column: 4 + 63))
        #expect(error.message == "nodes are nested deeper than 64 levels")
        let thousands = try #require(Self.refusal(String(repeating: "[", count: 100_000)))
        #expect(thousands.kind == .tooDeep(limit: 64))
    }

    @Test("an alias that would nest too deep is refused too")
    func aliasDepth() throws {
        let limits = YAMLLimits(maxDepth: 4)
        #expect(Self.refusal("a: &a [[x]]\n", limits: limits) == nil)
        let error = try #require(Self.refusal("a: &a [[x]]\nb: [*a]\n", limits: limits))
        #expect(error.kind == .tooDeep(limit: 4))
        #expect(error.mark == YAMLMark(line: 2, column: 5))
    }

    @Test("a text over the size limit is refused before libyaml reads it")
    func tooLarge() throws {
        let error = try #require(Self.refusal("a: 12345\n", limits: YAMLLimits(maxBytes: 8)))
        #expect(error.kind == .tooLarge(bytes: 9, limit: 8))
        #expect(error.mark == nil)
        #expect(error.description == "the text is 9 bytes, more than the limit of 8")
    }
}
