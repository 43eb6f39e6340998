import Testing

@testable import RecontextCore

/// The values every Mustache test renders with, and shortcuts to render.
enum MustacheFixture {
    static let host = [
        "name": "hv1", "zone": "rack-1", "empty": "", "markup": "<b class=\"x\">&'</b>", "multi": "l1\nl2\n",
        "api_token": "t0k", "words": "hello wORLD it's",
    ]
    static let vm = ["name": "web1", "role": "web", "empty": "", "zone": "vm-zone"]
    static let values = TemplateValues(
        host: host, vm: vm, merged: host.filter { $0.key != "name" }.merging(vm.filter { $0.key != "name" }) { $1 })

    /// The rendering of `template`, or the error.
    static func render(_ template: String) -> Result<TemplateEngine.Rendering, ContextError> {
        Result { () throws(ContextError) in
            try TemplateEngine.render(template, values: values, domain: "web1", field: "file[t]")
        }
    }

    /// The text `template` renders to; records an issue and returns `nil` on an error.
    static func text(_ template: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        switch render(template) {
        case .success(let rendering): return rendering.text
        case .failure(let error):
            Issue.record("\(String(reflecting: template)) failed: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// The message of the error `template` gives; records an issue and returns `nil` when it renders.
    static func message(_ template: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        switch render(template) {
        case .success(let rendering):
            Issue.record("\(String(reflecting: template)) rendered \(String(reflecting: rendering.text))")
            return nil
        case .failure(let error): return error.message
        }
    }
}

/// The Mustache spec's rules (interpolation, sections, inverted sections, comments, set delimiters,
/// standalone lines, blocks), with text values only: no lists, no lambdas, no partials.
@Suite("Mustache: the spec's rules, with text values")
struct MustacheTests {
    @Test(
        "interpolation: values, as text, with the text around them kept exactly",
        arguments: [
            ("no tags at all\n", "no tags at all\n"),
            ("Hello, {{host.name}}!", "Hello, hv1!"),
            ("{{{host.name}}} {{&host.name}} {{& host.name }} {{{ host.name }}}", "hv1 hv1 hv1 hv1"),
            (
                "{{host.markup}}|{{{host.markup}}}|{{&host.markup}}",
                "<b class=\"x\">&'</b>|<b class=\"x\">&'</b>|<b class=\"x\">&'</b>"
            ),
            ("  {{host.name}}\n", "  hv1\n"),
            ("{{ host.name }}|{{\thost.name\t}}|{{ host.name\n}}|{{{\nhost.name }}}", "hv1|hv1|hv1|hv1"),
            ("a } b }} c { d", "a } b }} c { d"),
            ("  {{{host.name}}}  \n", "  hv1  \n"),
            ("|{{host.empty}}|", "||"),
            ("{{host.multi}}{{host.multi}}", "l1\nl2\nl1\nl2\n"),
            ("{{var.zone}} {{var.api_token}} {{vm.zone}} {{host.zone}}", "vm-zone t0k vm-zone rack-1"),
            ("{ {host.name} }", "{ {host.name} }"),
        ]
    )
    func interpolation(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "sections: rendered when the value is defined and not empty, the value then current",
        arguments: [
            ("{{#host.zone}}yes{{/host.zone}}", "yes"),
            ("{{#host.empty}}yes{{/host.empty}}", ""),
            ("{{#host.nope}}yes {{host.nope}}{{/host.nope}}", ""),
            ("{{#host.zone}}{{.}}/{{ . }}/{{{.}}}{{/host.zone}}", "rack-1/rack-1/rack-1"),
            ("{{#host.zone}}{{vm.name}}{{/host.zone}}", "web1"),
            ("{{#host}}{{name}} {{zone}} {{vm.role}}{{/host}}", "hv1 rack-1 web"),
            ("{{#vm}}{{zone}}{{#host}}/{{zone}}{{/host}}{{/vm}}", "vm-zone/rack-1"),
            ("{{#var}}{{zone}}{{/var}}", "vm-zone"),
            ("{{#host.zone}}{{#vm.role}}{{#host.name}}{{.}}{{/host.name}}{{/vm.role}}{{/host.zone}}", "hv1"),
            ("{{#host.zone}}{{#vm.empty}}no{{/vm.empty}}{{/host.zone}}", ""),
            ("{{#.}}{{host.name}}{{/.}}", "hv1"),
            ("{{#host}}{{.name}}{{/host}}", "hv1"),
            ("{{# host.zone }}a{{/ host.zone }}", "a"),
            ("[{{#host.zone}} {{.}} {{/host.zone}}]", "[ rack-1 ]"),
        ]
    )
    func sections(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "inverted sections: rendered when the value is undefined or empty",
        arguments: [
            ("{{^host.nope}}none{{/host.nope}}", "none"),
            ("{{^host.empty}}empty{{/host.empty}}", "empty"),
            ("{{^host.zone}}no{{/host.zone}}", ""),
            ("{{^host}}no{{/host}}{{^.}}no{{/.}}", ""),
            ("{{#host.zone}}zone{{/host.zone}}{{^host.zone}}none{{/host.zone}}", "zone"),
            ("{{^host.nope}}{{^vm.empty}}x{{/vm.empty}}{{#vm.role}}{{.}}{{/vm.role}}{{/host.nope}}", "xweb"),
            ("{{^host.nope.deeper}}none{{/host.nope.deeper}}", "none"),
        ]
    )
    func invertedSections(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "comments: removed, and a standalone one with its line",
        arguments: [
            ("12345{{! Comment Block! }}67890", "1234567890"),
            ("12345{{!\n  This is a\n  multi-line comment...\n}}67890\n", "1234567890\n"),
            ("Begin.\n{{! Comment Block! }}\nEnd.\n", "Begin.\nEnd.\n"),
            ("Begin.\n  {{! Indented Comment Block! }}\nEnd.\n", "Begin.\nEnd.\n"),
            ("|\r\n{{! Standalone Comment }}\r\n|", "|\r\n|"),
            ("  {{! I'm Still Standalone }}\n!", "!"),
            ("!\n  {{! I'm Still Standalone }}", "!\n"),
            ("Begin.\n{{!\nSomething's going on here...\n}}\nEnd.\n", "Begin.\nEnd.\n"),
            ("  12 {{! 34 }}\n", "  12 \n"),
            ("12345 {{! Comment Block! }} 67890", "12345  67890"),
            ("{{! mentions > partial, {{host.nope and {{#a }}x", "x"),
            ("{{!}}x{{! }}", "x"),
        ]
    )
    func comments(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "set delimiters: in effect to the end of the enclosing section",
        arguments: [
            ("{{=<% %>=}}(<%host.name%>)", "(hv1)"),
            ("({{=[ ]=}}[host.name])", "(hv1)"),
            ("{{= | | =}}|host.name| |={{ }}=| {{host.name}}", "hv1  hv1"),
            (
                "[\n{{#host.zone}}\n  {{host.name}}\n  |a|\n{{/host.zone}}\n{{= | | =}}\n|#host.zone|\n  {{host.name}}\n  |vm.name|\n|/host.zone|\n]\n",
                "[\n  hv1\n  |a|\n  {{host.name}}\n  web1\n]\n"
            ),
            ("{{=<% %>=}}<%^host.nope%><%vm.name%><%/host.nope%>", "web1"),
            ("{{#host.zone}}{{=<% %>=}}<%.%><%/host.zone%>{{host.name}}", "rack-1hv1"),
            ("{{=<% %>=}}{{host.name}}<%={{ }}=%>{{host.name}}", "{{host.name}}hv1"),
            ("| {{=@ @=}} |", "|  |"),
            ("Begin.\n{{=@ @=}}\nEnd.\n", "Begin.\nEnd.\n"),
            ("Begin.\n  {{=@ @=}}\nEnd.\n", "Begin.\nEnd.\n"),
            ("|\r\n{{= @ @ =}}\r\n|", "|\r\n|"),
            ("  {{=@ @=}}\n=", "="),
            ("=\n  {{=@ @=}}", "=\n"),
            ("{{=<<< >>>=}}<<<host.name>>>", "hv1"),
        ]
    )
    func setDelimiters(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "standalone lines: a section, inverted or closing tag alone on its line goes with the line",
        arguments: [
            ("| This Is\n{{#host.zone}}\n|\n{{/host.zone}}\n| A Line\n", "| This Is\n|\n| A Line\n"),
            ("| This Is\n  {{#host.zone}}\n|\n  {{/host.zone}}\n| A Line\n", "| This Is\n|\n| A Line\n"),
            ("|\r\n{{#host.zone}}\r\n{{/host.zone}}\r\n|", "|\r\n|"),
            ("  {{#host.zone}}\n#{{/host.zone}}\n/", "#\n/"),
            ("#{{#host.zone}}\n/\n  {{/host.zone}}", "#\n/\n"),
            ("{{^host.nope}}\nno\n{{/host.nope}}\n", "no\n"),
            ("\t{{#host.zone}}\t\nzone\n\t{{/host.zone}}\t\n", "zone\n"),
            (" {{#host.zone}}YES{{/host.zone}}\n {{#host.zone}}GOOD{{/host.zone}}\n", " YES\n GOOD\n"),
            ("#{{#host.zone}}\n{{host.name}}\n{{/host.zone}}\n", "#\nhv1\n"),
            ("{{#host.zone}}\n  {{#vm.role}}\n    {{.}}\n  {{/vm.role}}\n{{/host.zone}}\n", "    web\n"),
            ("{{#host.nope}}\nnever\n{{/host.nope}}\nafter\n", "after\n"),
            ("{{#host.zone}} x {{/host.zone}}\n", " x \n"),
            ("{{#host.zone}}\n{{/host.zone}}", ""),
            ("  {{host.name}}\n  {{! c }}\n", "  hv1\n"),
        ]
    )
    func standaloneLines(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }

    @Test(
        "blocks outside a parent render their default, later lines indented by the tag's indentation",
        arguments: [
            ("{{$b}}default{{/b}}", "default"),
            ("a{{$b}}{{host.name}}{{/b}}z", "ahv1z"),
            ("{{$b}}\nx\n{{/b}}\n", "x\n"),
            ("  {{$b}}\n  x\n  y\n  {{/b}}\n", "    x\n    y\n"),
            (" {{$b}}{{host.multi}}{{host.multi}}{{/b}}|", " l1\nl2\n l1\nl2\n|"),
            ("{{#host.zone}}{{$b}}{{.}}{{/b}}{{/host.zone}}", "rack-1"),
            ("{{$outer}}{{$inner}}in{{/inner}}{{/outer}}", "in"),
        ]
    )
    func blocks(template: String, expected: String) {
        #expect(MustacheFixture.text(template) == expected)
    }
}
