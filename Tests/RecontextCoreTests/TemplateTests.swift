import Foundation
import Testing

@testable import RecontextCore

@Suite("Templates: Mustache as plain text, undefined variables are errors")
struct TemplateTests {
    static let spec = ContextSpec(
        hostname: "web-01",
        variables: [
            VariableSpec(name: "role", value: "web"),
            VariableSpec(name: "zone", value: "vm-zone"),
            VariableSpec(name: "db_password", value: "p'w", secret: true),
            VariableSpec(name: "empty", value: ""),
        ]
    )

    /// Renders `template` as a file of `spec` and returns its text.
    static func render(_ template: String, spec: ContextSpec = TemplateTests.spec, host: HostFacts = Fixtures.host)
        throws -> String
    {
        var spec = spec
        spec.files.append(FileSpec(path: "etc/app.conf", content: .text(template), isTemplate: true))
        let rendered = try Fixtures.render(spec, host: host)
        return try #require(rendered.file("etc/app.conf")).text
    }

    @Test(
        "every value a template can see",
        arguments: [
            ("{{host.name}}", "hv1"),
            ("{{host.monitoring_endpoint}}", "http://10.0.0.5:9090"),
            ("{{host.zone}}", "rack-1"),
            ("{{host.api_token}}", "host-secret-token"),
            ("{{vm.name}}", "web1"),
            ("{{vm.uuid}}", "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab"),
            ("{{vm.hostname}}", "web-01"),
            ("{{vm.instance_id}}", "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab"),
            ("{{vm.role}}", "web"),
            ("{{vm.zone}}", "vm-zone"),
            ("{{vm.db_password}}", "p'w"),
            ("{{var.zone}}", "vm-zone"),
            ("{{var.ntp_server}}", "10.0.0.1"),
            ("{{var.role}}", "web"),
            ("{{ host.name }}", "hv1"),
            ("{{{host.name}}}", "hv1"),
            ("{{&host.name}}", "hv1"),
        ]
    )
    func values(template: String, expected: String) throws {
        #expect(try Self.render(template) == expected)
    }

    @Test("output is text: nothing is HTML-escaped")
    func noEscaping() throws {
        let host = HostFacts(name: "hv1", variables: ["markup": "<a href=\"x\">&amp;'</a>"])
        #expect(
            try Self.render("{{host.markup}}|{{{host.markup}}}", host: host)
                == "<a href=\"x\">&amp;'</a>|<a href=\"x\">&amp;'</a>")
    }

    @Test("text around tags is kept exactly, including a leading newline and the last newline")
    func textKept() throws {
        #expect(try Self.render("\nfirst {{host.name}}\n\n  indented\n") == "\nfirst hv1\n\n  indented\n")
        #expect(
            try Self.render("#cloud-config\nfqdn: {{vm.hostname}}.example\n") == "#cloud-config\nfqdn: web-01.example\n"
        )
        #expect(try Self.render("") == "")
    }

    @Test("an undefined variable is an error naming the variable, the file and the domain")
    func undefinedVariable() {
        let error = Fixtures.expectContextError { _ = try Self.render("endpoint={{host.monitoring_endpont}}\n") }
        #expect(error?.code == .undefinedVariable)
        #expect(error?.field == "file[etc/app.conf]")
        #expect(error?.domain == "web1")
        #expect(
            error?.description
                == "domain web1: file[etc/app.conf]: template uses undefined variable host.monitoring_endpont")
    }

    @Test(
        "every undefined variable is listed",
        arguments: [
            (
                "{{a}} {{vm.b}} {{var.c}} {{host.d.e}}",
                [
                    "undefined variable a", "undefined variable vm.b", "undefined variable var.c",
                    "undefined variable host.d.e",
                ]
            ),
            ("{{name}}", ["undefined variable name"]),
            ("{{#vm.role}}{{vm.missing}}{{/vm.role}}", ["undefined variable vm.missing"]),
        ]
    )
    func allUndefinedListed(template: String, problems: [String]) {
        let error = Fixtures.expectContextError { _ = try Self.render(template) }
        #expect(error?.code == .undefinedVariable)
        for problem in problems {
            #expect(error?.message.contains(problem) == true, "\(String(describing: error))")
        }
    }

    @Test("templates in user data name the document")
    func userDataField() {
        let spec = ContextSpec(userData: .text("#cloud-config\nntp: {{host.ntp}}\n", isTemplate: true))
        let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
        #expect(error?.field == "user-data")
        #expect(error?.message.contains("host.ntp") == true)
    }

    @Test("the error never shows a value")
    func errorsHideValues() {
        let error = Fixtures.expectContextError {
            _ = try Self.render("{{vm.db_password}} {{host.api_token}} {{host.nope}}")
        }
        #expect(error?.description.contains("p'w") == false)
        #expect(error?.description.contains("host-secret-token") == false)
    }

    @Test(
        "sections test presence without error; empty counts as absent",
        arguments: [
            ("{{#host.proxy}}proxy={{host.proxy}}{{/host.proxy}}", ""),
            ("{{^host.proxy}}no proxy{{/host.proxy}}", "no proxy"),
            ("{{#vm.empty}}set{{/vm.empty}}{{^vm.empty}}unset{{/vm.empty}}", "unset"),
            ("{{#host.zone}}zone={{.}}{{/host.zone}}", "zone=rack-1"),
            ("{{#host.zone}}{{vm.name}} in {{host.zone}}{{/host.zone}}", "web1 in rack-1"),
            ("{{#host}}{{name}}/{{zone}}/{{vm.name}}{{/host}}", "hv1/rack-1/web1"),
            ("{{#vm}}{{#role}}role {{.}} on {{host.name}}{{/role}}{{/vm}}", "role web on hv1"),
            ("{{#host.zone}}\nstandalone lines vanish\n{{/host.zone}}\n", "standalone lines vanish\n"),
            ("{{! a comment }}x", "x"),
            ("{{=<% %>=}}<% host.name %>", "hv1"),
        ]
    )
    func sections(template: String, expected: String) throws {
        #expect(try Self.render(template) == expected)
    }

    @Test("transforms work on values; an unknown transform is an error")
    func transforms() throws {
        #expect(
            try Self.render("{{uppercased(host.name)}} {{lowercased(vm.hostname)}} {{reversed(vm.role)}}")
                == "HV1 web-01 bew")
        #expect(try Self.render("{{#empty(vm.empty)}}empty{{/empty(vm.empty)}}") == "empty")
        let error = Fixtures.expectContextError { _ = try Self.render("{{shout(host.name)}}") }
        #expect(error?.code == .undefinedVariable)
        #expect(error?.message.contains("unknown transform shout") == true)
        let missing = Fixtures.expectContextError { _ = try Self.render("{{uppercased(host.nope)}}") }
        #expect(missing?.message.contains("host.nope") == true)
    }

    @Test("a group is not a value")
    func groupIsNotAValue() {
        let error = Fixtures.expectContextError { _ = try Self.render("{{host}}") }
        #expect(error?.message.contains("the group host as a value") == true)
    }

    @Test(
        "a syntax error is an error with the template's own line and column",
        arguments: [
            ("line one\nline two\n{{#host.zone}}never closed", "line 3", "not closed"),
            ("{{#a}}x{{/b}}", "line 1", "wrong name"),
            ("ok\n{{% NOPE: x}}", "line 2", "pragma"),
        ]
    )
    func syntaxError(template: String, line: String, words: String) {
        let error = Fixtures.expectContextError { _ = try Self.render(template) }
        #expect(error?.code == .templateSyntax)
        #expect(error?.field == "file[etc/app.conf]")
        #expect(error?.message.contains(line) == true, "\(String(describing: error))")
        #expect(error?.message.contains(words) == true, "\(String(describing: error))")
    }

    @Test("a base64 template renders like a text one")
    func base64Template() throws {
        let xml =
            "<context><file path=\"t\" template=\"yes\" encoding=\"base64\">\(Data("host={{host.name}}".utf8).base64EncodedString())</file></context>"
        let rendered = try Fixtures.render(try Fixtures.parse(xml))
        #expect(rendered.file("t")?.text == "host=hv1")
    }

    @Test("a file that is not a template is copied as is, braces and all")
    func notATemplate() throws {
        let rendered = try Fixtures.render(
            ContextSpec(files: [FileSpec(path: "raw", content: .text("{{host.name}} {{nope}}"))]))
        #expect(rendered.file("raw")?.text == "{{host.name}} {{nope}}")
    }

    @Test(
        "an undefined partial is an error naming the partial, the file and the domain",
        arguments: [
            ("a{{> header}}b", ["undefined partial header"]),
            ("{{>header}}", ["undefined partial header"]),
            ("{{#host.zone}}\n  {{> inside-a-section}}\n{{/host.zone}}", ["undefined partial inside-a-section"]),
            ("{{^host.nope}}{{> in-an-inverted-section}}{{/host.nope}}", ["undefined partial in-an-inverted-section"]),
            ("{{#host.nope}}{{> never-rendered}}{{/host.nope}}", ["undefined partial never-rendered"]),
            ("{{=<% %>=}}<%> after-set-delimiter %>", ["undefined partial after-set-delimiter"]),
            ("{{>*vm.role}}", ["undefined partial *vm.role"]),
            ("{{<parent}}{{$block}}x{{/block}}{{/parent}}", ["undefined partial parent"]),
            ("{{$block}}{{> in-a-block}}{{/block}}", ["undefined partial in-a-block"]),
            (
                "{{<parent}}{{$b}}{{> in-a-given-block}}{{/b}}{{/parent}}",
                ["undefined partial parent", "undefined partial in-a-given-block"]
            ),
            ("{{> one}}{{> two}}{{host.nope}}", ["undefined partial one", "undefined partial two"]),
        ]
    )
    func undefinedPartial(template: String, problems: [String]) {
        let error = Fixtures.expectContextError { _ = try Self.render(template) }
        #expect(error?.code == .undefinedVariable)
        #expect(error?.field == "file[etc/app.conf]")
        #expect(error?.domain == "web1")
        for problem in problems {
            #expect(error?.message.contains(problem) == true, "\(String(describing: error))")
        }
    }

    @Test("the partial's error names it exactly, in user data too")
    func undefinedPartialMessage() {
        let file = Fixtures.expectContextError { _ = try Self.render("a{{> header}}b") }
        #expect(file?.description == "domain web1: file[etc/app.conf]: template uses undefined partial header")
        let spec = ContextSpec(userData: .text("#cloud-config\n{{> header}}\n", isTemplate: true))
        let userData = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
        #expect(userData?.field == "user-data")
        #expect(userData?.message == "template uses undefined partial header")
    }

    @Test(
        "text that only looks like a partial is not one",
        arguments: [
            ("{{! a comment mentioning > header }}x", "x"),
            ("a > b and {{host.name}} < c", "a > b and hv1 < c"),
            ("{{=<% %>=}}{{> not-a-tag-any-more}}", "{{> not-a-tag-any-more}}"),
        ]
    )
    func notAPartial(template: String, expected: String) throws {
        #expect(try Self.render(template) == expected)
    }

    @Test("many renders in parallel give the same bytes")
    func parallelRenders() async throws {
        let spec = try Fixtures.parse(Fixtures.libvirtXML)
        let expected = try Fixtures.render(spec)
        let results = await withTaskGroup(of: RenderedContext?.self) { group in
            for _ in 0..<64 {
                group.addTask { try? Fixtures.render(spec) }
            }
            var all: [RenderedContext?] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 64)
        #expect(results.allSatisfy { $0 == expected })
    }
}
