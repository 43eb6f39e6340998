import Foundation
import Testing

@testable import RecontextCore

/// What recontextd adds to the spec or keeps from swift-mustache: errors (with line and column),
/// partials, transforms, the host variables a template references, pragmas, and the readings of
/// swift-mustache that templates may rely on.
@Suite("Mustache: errors, partials, transforms, referenced host variables, swift-mustache's readings")
struct MustacheBehaviourTests {
    @Test(
        "a syntax error names the template's line and column (in characters) and what is wrong",
        arguments: [
            ("{{#host.zone}}never closed", 1, 27, "a section is not closed"),
            ("line one\n{{#a}}x{{/b}}", 2, 11, "a section is closed with the wrong name"),
            ("{{#a}}\n  {{/ b}}", 2, 6, "a section is closed with the wrong name"),
            ("{{#a}}\n{{#b}}\n{{/a}}", 3, 4, "a section is closed with the wrong name"),
            ("{{/host.zone}}", 1, 4, "a section is closed with the wrong name"),
            ("{{#empty(vm.x)}}{{/vm.x}}", 1, 20, "a section is closed with the wrong name"),
            ("{{=<% %>=}}\n<%#a%>x<%/b%>", 2, 11, "a section is closed with the wrong name"),
            ("{{host.name", 1, 12, "a tag is not closed"),
            ("{{host name}}", 1, 8, "a tag is not closed"),
            ("{{{host.name}}", 1, 15, "a tag is not closed"),
            ("{{! never closed", 1, 4, "a tag is not closed"),
            ("{{uppercased(host.name}}", 1, 25, "a tag is not closed"),
            ("{{uppercased(reversed(host.name)))}}", 1, 37, "a tag is not closed"),
            ("{{host.name}\u{301}}", 1, 12, "a tag is not closed"),
            ("{{> header", 1, 11, "a tag is not closed"),
            ("{{=<% %>}}", 1, 7, "a malformed set-delimiter tag"),
            ("{{=<%%>=}}", 1, 4, "a malformed set-delimiter tag"),
            ("{{=<% %>=}", 1, 10, "a malformed set-delimiter tag"),
            ("ok\n{{% NOPE: x}}", 2, 14, "an unknown pragma"),
            ("{{%CONTENT_TYPE: JSON}}", 1, 24, "an unknown pragma"),
            ("{{%CONTENT_TYPE}}", 1, 16, "a malformed pragma"),
            ("{{$b(x)}}{{/b(x)}}", 1, 10, "a transform applied to an inheritance section"),
            ("{{<parent}}{{host.name}}{{/parent}}", 1, 36, "an illegal tag inside an inheritance section"),
            ("{{<parent}}{{=<% %>=}}<%$b%>x<%/b%><%/parent%>", 1, 47, "an illegal tag inside an inheritance section"),
            ("e\u{301}{{#a}}", 1, 8, "a section is not closed"),
            ("a\r\n{{#b}}", 2, 7, "a section is not closed"),
            ("a\rb\u{2028}{{#b}}", 3, 7, "a section is not closed"),
        ]
    )
    func syntaxError(template: String, line: Int, column: Int, problem: String) {
        let error = Fixtures.expectContextError { _ = try MustacheFixture.render(template).get() }
        #expect(error?.code == .templateSyntax)
        #expect(error?.field == "file[t]")
        #expect(error?.message == "template syntax error at line \(line), column \(column): \(problem)")
    }

    @Test(
        "anything undefined is an error; every problem is listed once, sorted",
        arguments: [
            ("{{host.nope}}", "undefined variable host.nope"),
            (
                "{{nope}} {{var.nope}} {{vm.nope.deeper}}",
                "undefined variable nope; undefined variable var.nope; undefined variable vm.nope.deeper"
            ),
            ("{{b.x}}{{a.x}}{{b.x}}", "undefined variable a.x; undefined variable b.x"),
            ("{{#host.zone}}{{zone}}{{/host.zone}}", "undefined variable zone"),
            ("{{host.zone.x}}", "undefined variable host.zone.x"),
            ("{{#host.zone}}{{.x}}{{/host.zone}}", "undefined variable host.zone.x"),
            ("{{#host}}{{zone.x}}{{/host}}", "undefined variable host.zone.x"),
            ("{{host}}", "the group host as a value (name a variable, e.g. host.name)"),
            ("{{#vm}}{{.}}{{/vm}}", "the group vm as a value (name a variable, e.g. vm.name)"),
            ("{{.}}", "the whole context as a value"),
            ("{{ }}", "the whole context as a value"),
            (
                "{{shout(host.name)}}",
                "unknown transform shout(...) (known: uppercased, lowercased, capitalized, reversed, empty)"
            ),
            (
                "{{#shout(host.nope)}}x{{/shout(host.nope)}}",
                "unknown transform shout(...) (known: uppercased, lowercased, capitalized, reversed, empty)"
            ),
            (
                "{{shout(host.nope)}}",
                "undefined variable host.nope; unknown transform shout(...) (known: uppercased, lowercased, capitalized, reversed, empty)"
            ),
            ("{{uppercased(host.nope)}}", "undefined variable host.nope"),
            ("{{uppercased(host)}}", "uppercased(...) of the group host (name a variable, e.g. host.name)"),
            ("{{#empty(var)}}x{{/empty(var)}}", "empty(...) of the group var (name a variable, e.g. var.name)"),
            ("{{lowercased(.)}}", "lowercased(...) of the whole context"),
            ("{{uppercased()}}", "uppercased() names no variable (name one, e.g. uppercased(host.name))"),
            (
                "{{uppercased(empty(host.zone))}}",
                "uppercased(...) of empty(host.zone), which is true or false, not text"
            ),
        ]
    )
    func undefined(template: String, problems: String) {
        let error = Fixtures.expectContextError { _ = try MustacheFixture.render(template).get() }
        #expect(error?.code == .undefinedVariable)
        #expect(error?.message == "template uses " + problems)
    }

    @Test(
        "only what renders is looked up: a section that does not render has no problems",
        arguments: [
            "{{#host.nope}}{{nope}}{{shout(x)}}{{host}}{{/host.nope}}", "{{^host.zone}}{{nope}}{{/host.zone}}",
            "{{#empty(host.zone)}}{{nope}}{{/empty(host.zone)}}",
        ]
    )
    func notRenderedNotChecked(template: String) {
        #expect(MustacheFixture.text(template) == "")
    }

    @Test(
        "every partial is undefined, wherever it is, and only the partials are reported",
        arguments: [
            ("a{{> header}}b", "undefined partial header"),
            ("{{>header}}{{host.nope}}", "undefined partial header"),
            ("{{>*vm.role}}", "undefined partial *vm.role"),
            ("{{> * x }}", "undefined partial *x"),
            ("{{> a/b.c}}", "undefined partial a/b.c"),
            ("{{#host.nope}}\n  {{> never-rendered}}\n{{/host.nope}}", "undefined partial never-rendered"),
            ("{{=<% %>=}}<%> after-set-delimiter %>", "undefined partial after-set-delimiter"),
            (
                "{{<parent}}text{{! c}}{{$b}}{{> inner}}{{/b}}{{/parent}}",
                "undefined partial inner; undefined partial parent"
            ),
            ("{{<*dynamic}}{{/*dynamic}}", "undefined partial *dynamic"),
            (
                "{{$block}}{{> in-a-block}}{{/block}}{{> one}}{{> one}}",
                "undefined partial in-a-block; undefined partial one"
            ),
        ]
    )
    func partials(template: String, problems: String) {
        let error = Fixtures.expectContextError { _ = try MustacheFixture.render(template).get() }
        #expect(error?.code == .undefinedVariable)
        #expect(error?.message == "template uses " + problems)
    }

    @Test(
        "transforms: on values, nested innermost first, also as section names",
        arguments: [
            ("{{uppercased(host.name)}} {{lowercased(host.words)}} {{reversed(vm.role)}}", "HV1 hello world it's bew"),
            ("{{capitalized(host.words)}}|{{capitalized(host.markup)}}", "Hello World It's|<B Class=\"X\">&'</B>"),
            ("{{uppercased(reversed(vm.role))}} {{ reversed(uppercased(vm.role)) }}", "BEW BEW"),
            ("{{empty(host.empty)}} {{empty(host.zone)}}", "true false"),
            ("{{#empty(vm.empty)}}e{{/empty(vm.empty)}}{{^empty(vm.role)}}n{{/empty(vm.role)}}", "en"),
            ("{{#empty(host.nope)}}a{{/empty(host.nope)}}{{^empty(host.nope)}}b{{/empty(host.nope)}}", "b"),
            ("{{#uppercased(host.zone)}}{{.}}{{/uppercased(host.zone)}}", "RACK-1"),
            ("{{#host.zone}}{{uppercased(.)}}{{/host.zone}}{{#host}}{{uppercased(zone)}}{{/host}}", "RACK-1RACK-1"),
            ("{{reversed(host.empty)}}|{{uppercased(host.multi)}}", "|L1\nL2\n"),
        ]
    )
    func transforms(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test("capitalized gives what Foundation's capitalized gave, for every BMP scalar in context")
    func capitalizedAgreesWithFoundation() {
        var mismatches: [String] = []
        for value in UInt32(0)...0xFFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let text = String(scalar)
            for probe in [text + "a", "a" + text + "a", "A" + text + "bC", " " + text] {
                if MustacheRenderer.capitalized(probe) != probe.capitalized { mismatches.append(probe) }
            }
        }
        for text in [
            "hello wORLD", "it's o'neil", "web-01.example:80", "ǆemal", "ß ﬁsh", "élan e\u{301}lan", "1abc a_b",
        ] {
            if MustacheRenderer.capitalized(text) != text.capitalized { mismatches.append(text) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20).map { Array($0.unicodeScalars) })")
    }

    @Test(
        "the host variables referenced: every name looked up in host or var, found or not, rendered or tested",
        arguments: [
            ("{{host.zone}}", ["zone"]),
            ("{{var.api_token}}{{vm.role}}{{vm.name}}", ["api_token"]),
            ("{{#host.nope}}{{host.api_token}}{{/host.nope}}", ["nope"]),
            ("{{^var.nope}}x{{/var.nope}}", ["nope"]),
            ("{{#host.zone}}{{/host.zone}}{{^host.empty}}{{/host.empty}}{{host.name}}", ["zone", "empty", "name"]),
            ("{{#host}}{{zone}}{{/host}}", ["zone"]),
            ("{{#host}}{{vm.name}}{{/host}}", ["vm"]),
            ("{{var.host.name}}", ["host", "name"]),
            ("{{#var}}{{#host}}{{name}}{{/host}}{{/var}}", ["host", "name"]),
            ("{{#vm}}{{host.zone}}{{/vm}}", ["zone"]),
            ("{{uppercased(host.name)}}{{#empty(var.nope)}}{{/empty(var.nope)}}", ["name", "nope"]),
            ("{{! {{host.api_token}} }}{{=<% %>=}}{{host.api_token}}", []),
        ]
    )
    func hostVariables(template: String, expected: [String]) throws {
        #expect(try MustacheFixture.render(template).get().hostVariables == Set(expected))
    }

    @Test(
        "the content-type pragma: TEXT (the default) or HTML, which escapes {{name}} to the end of its section",
        arguments: [
            ("{{%CONTENT_TYPE: TEXT}}{{host.markup}}", "<b class=\"x\">&'</b>"),
            (
                "{{%CONTENT_TYPE: HTML}}{{host.markup}}|{{{host.markup}}}|{{&host.markup}}",
                "&lt;b class=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;|<b class=\"x\">&'</b>|<b class=\"x\">&'</b>"
            ),
            (
                "{{#host.zone}}{{%CONTENT_TYPE:HTML}}{{host.markup}}{{/host.zone}}|{{host.markup}}",
                "&lt;b class=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;|<b class=\"x\">&'</b>"
            ),
            ("{{%CONTENT_TYPE:HTML}}\n{{%CONTENT_TYPE:TEXT}}\n{{host.markup}}", "<b class=\"x\">&'</b>"),
            ("{{%CONTENT_TYPE:HTML}}{{empty(host.zone)}}", "false"),
        ]
    )
    func contentType(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "swift-mustache's readings, kept so that every template renders as before",
        arguments: [
            // A last line of only spaces or tabs, without a line break, is dropped.
            ("a\n  ", "a\n"),
            // The opening delimiter at the very end is dropped (a lone `{` there is text: swift-mustache
            // failed on it).
            ("a{{", "a"),
            ("a{", "a{"),
            // An opening delimiter followed by a line break is dropped, the rest is text.
            ("a{{\nb}}", "a\nb}}"),
            ("{{\rhost.name}}", "\rhost.name}}"),
            // After a section, "at the start of a line" is what it was after the opening tag.
            ("{{#host.zone}}\nX{{/host.zone}} {{! c }}\nY", "XY"),
            ("A{{#host.zone}}X\n{{/host.zone}}\n{{! c}}\nY", "AX\n\nY"),
            // After a standalone tag, any Character.isNewline ends the line.
            ("{{#host.zone}}\rX{{/host.zone}}", "X"),
            // A triple mustache with other delimiters closes with the delimiter, then `}`.
            ("{{=<% %>=}}<%{host.name%>}", "hv1"),
            // A comment ends at the first complete closing delimiter found without backtracking.
            ("{{=<% %>=}}<%! a %%> b %>x", "x"),
        ]
    )
    func swiftMustacheReadings(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    /// `count` sections, one inside the other, around `x`.
    static func nested(_ count: Int) -> String {
        String(repeating: "{{#host.zone}}", count: count) + "x" + String(repeating: "{{/host.zone}}", count: count)
    }

    @Test("sections nest at most 100 deep (parsing and rendering recurse once per level)")
    func nestingBound() async {
        // On a thread of the cooperative pool, as the daemon renders.
        let text = await Task.detached { MustacheFixture.text(Self.nested(MustacheParser.maxDepth)) }.value
        #expect(text == "x")
        let error = Fixtures.expectContextError { _ = try MustacheFixture.render(Self.nested(101)).get() }
        #expect(error?.message == "template syntax error at line 1, column 1415: sections nested more than 100 deep")
        let parents = String(repeating: "{{<p}}{{$b}}", count: 51)
        #expect(MustacheFixture.message(parents)?.hasSuffix("sections nested more than 100 deep") == true)
    }

    @Test("the parser's tokens: names with transforms, sections, blocks, partials")
    func tokens() throws {
        let tokens = try MustacheParser.parse("a{{#x}}b{{{u(c.d)}}}{{/x}}{{$blk}}{{> p}}{{/blk}}{{<q}}{{/q}}")
        #expect(
            tokens == [
                .text("a"),
                .section(
                    MustacheName(path: "x"),
                    [.text("b"), .variable(MustacheName(path: "c.d", transforms: ["u"]), escaped: false)]),
                .block("blk", indentation: "", [.partial("p")]),
                .parent("q", []),
            ])
        #expect(MustacheToken.partialNames(in: tokens) == ["p", "q"])
        #expect(
            try MustacheParser.parse("{{a(b(c))}}") == [
                .variable(MustacheName(path: "c", transforms: ["a", "b"]), escaped: true)
            ])
    }
}
