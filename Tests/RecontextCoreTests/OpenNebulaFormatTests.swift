import Foundation
import Testing

@testable import RecontextCore

@Suite("OpenNebula: context.sh parses in sh to exactly the right values")
struct OpenNebulaFormatTests {
    /// The shells that guest tools source context.sh with: `sh` always, `bash` where installed.
    static let shells = ["/bin/sh", "/bin/bash"].filter { FileManager.default.isExecutableFile(atPath: $0) }

    /// Writes context.sh to a fresh directory and returns `$KEY` as the shell sees it after sourcing it.
    static func sourced(_ rendered: RenderedContext, keys: [String], shell: String = "/bin/sh") throws -> [String:
        String]
    {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try #require(rendered.file("context.sh"))
        try Data(file.contents).write(to: directory.appendingPathComponent("context.sh"))
        var values: [String: String] = [:]
        for key in keys {
            let (output, status) = try Fixtures.shell(
                ". ./context.sh; printf %s \"$\(key)\"", in: directory, shell: shell)
            #expect(status == 0)
            values[key] = output
        }
        return values
    }

    static let awkwardValues = [
        "plain",
        "it's",
        "'",
        "''",
        "'\\''",
        "\"double\" quotes",
        "$HOME and ${PATH} and $(touch pwned) and `touch pwned2`",
        "back\\slash\\",
        "\\n is not a newline",
        "two\nlines",
        "trailing newline\n",
        "\n\nleading newlines",
        "tab\tand\r carriage return",
        "",
        " spaces ",
        "; rm -rf / #",
        "café 😀 ünïcödé",
        "a'b\"c$d\\e`f\ng",
        "!history !! and * glob ? [x]",
    ]

    @Test("context.sh differs on every generation a migration builds (A, B, A again), and with any file")
    func differsPerGeneration() throws {
        let spec = ContextSpec(
            format: .openNebula, files: [FileSpec(path: "etc/monitoring.conf", content: .text("endpoint=x"))])
        func contextSh(_ host: String, _ spec: ContextSpec = spec) throws -> [UInt8] {
            try #require(try Fixtures.render(spec, host: HostFacts(name: host, variables: [:])).file("context.sh"))
                .contents
        }
        let onA = try contextSh("hv-a")
        let onB = try contextSh("hv-b")
        #expect(onA != onB, "stock OpenNebula guests re-run their scripts only when context.sh changes")
        #expect(try contextSh("hv-a") == onA, "the same host and data: the same content, no new generation")
        var changed = spec
        changed.files[0].content = .text("endpoint=y")
        #expect(try contextSh("hv-a", changed) != onA, "a file's change alone changes context.sh")
    }

    @Test("each awkward value comes back byte for byte", arguments: awkwardValues, shells)
    func awkwardValue(value: String, shell: String) throws {
        let spec = ContextSpec(
            format: .openNebula, variables: [VariableSpec(name: "value", value: value, secret: true)])
        let rendered = try Fixtures.render(spec, host: HostFacts(name: "hv1", variables: ["host_value": value]))
        let values = try Self.sourced(rendered, keys: ["VALUE", "HOST_VALUE"], shell: shell)
        #expect(values["VALUE"] == value)
        #expect(values["HOST_VALUE"] == value)
    }

    @Test("sourcing context.sh runs nothing")
    func sourcingRunsNothing() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let rendered = try Fixtures.render(
            ContextSpec(
                format: .openNebula,
                variables: [VariableSpec(name: "evil", value: "$(touch pwned)`touch pwned2`'; touch pwned3; '")])
        )
        try Data(rendered.file("context.sh")!.contents).write(to: directory.appendingPathComponent("context.sh"))
        let (_, status) = try Fixtures.shell(". ./context.sh", in: directory)
        #expect(status == 0)
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(entries == ["context.sh"])
    }

    @Test("keys: upper-cased, invalid characters as _, VM variables override host ones, generated keys")
    func keys() throws {
        let spec = ContextSpec(
            format: .openNebula,
            hostname: "web-01",
            variables: [
                VariableSpec(name: "zone", value: "vm-zone"), VariableSpec(name: "app-name", value: "shop"),
                VariableSpec(name: "HOSTNAME", value: "ignored"),
            ]
        )
        let rendered = try Fixtures.render(spec)
        #expect(rendered.volumeID == "CONTEXT")
        #expect(rendered.files.map(\.path) == ["context.sh", "recontext/context.json"])
        let keys = [
            "ZONE", "APP_NAME", "MONITORING_ENDPOINT", "NTP_SERVER", "API_TOKEN", "HOSTNAME", "SET_HOSTNAME",
            "RECONTEXT_HOST",
            "RECONTEXT_DOMAIN", "RECONTEXT_DOMAIN_UUID", "RECONTEXT_INSTANCE_ID",
        ]
        let values = try Self.sourced(rendered, keys: keys)
        #expect(values["ZONE"] == "vm-zone")
        #expect(values["APP_NAME"] == "shop")
        #expect(values["MONITORING_ENDPOINT"] == "http://10.0.0.5:9090")
        #expect(values["NTP_SERVER"] == "10.0.0.1")
        #expect(values["API_TOKEN"] == "", "a host secret the VM does not reference stays out")
        #expect(values["HOSTNAME"] == "web-01")
        #expect(values["SET_HOSTNAME"] == "web-01")
        #expect(values["RECONTEXT_HOST"] == "hv1")
        #expect(values["RECONTEXT_DOMAIN"] == "web1")
        #expect(values["RECONTEXT_DOMAIN_UUID"] == Fixtures.domain.uuid)
        #expect(values["RECONTEXT_INSTANCE_ID"] == Fixtures.domain.uuid)
    }

    @Test("lines are KEY='value', sorted by key, after one comment line")
    func layout() throws {
        let rendered = try Fixtures.render(
            ContextSpec(format: .openNebula), host: HostFacts(name: "hv1", variables: ["b": "2", "a": "it's"]))
        let text = try #require(rendered.file("context.sh")).text
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "# Context variables generated by recontextd")
        #expect(lines.last == "")
        let keys = lines.dropFirst().dropLast().map { String($0.prefix { $0 != "=" }) }
        #expect(keys == keys.sorted())
        #expect(lines.contains("A='it'\\''s'"))
        #expect(lines.contains("B='2'"))
    }

    @Test("context.sh is 0600 when it holds a secret or user data, else 0644")
    func mode() throws {
        let plain = try Fixtures.render(
            ContextSpec(format: .openNebula), host: HostFacts(name: "hv1", variables: ["a": "1"]))
        #expect(plain.file("context.sh")?.mode == 0o644)
        let unreferencedHostSecret = try Fixtures.render(ContextSpec(format: .openNebula))
        #expect(unreferencedHostSecret.file("context.sh")?.mode == 0o644)
        let referencedHostSecret = try Fixtures.render(
            ContextSpec(
                format: .openNebula,
                files: [
                    FileSpec(path: "t", content: .text("{{#host.api_token}}x{{/host.api_token}}"), isTemplate: true)
                ]
            ))
        #expect(referencedHostSecret.file("context.sh")?.mode == 0o600)
        let vmSecret = try Fixtures.render(
            ContextSpec(format: .openNebula, variables: [VariableSpec(name: "pw", value: "x", secret: true)]))
        #expect(vmSecret.file("context.sh")?.mode == 0o600)
        let userData = try Fixtures.render(
            ContextSpec(format: .openNebula, userData: .text("x")), host: HostFacts(name: "hv1"))
        #expect(userData.file("context.sh")?.mode == 0o600)
    }

    @Test("user data travels as base64 in USER_DATA, rendered first")
    func userData() throws {
        let spec = ContextSpec(
            format: .openNebula, userData: .text("#cloud-config\nhostname: {{vm.hostname}}\n", isTemplate: true))
        let rendered = try Fixtures.render(spec)
        let values = try Self.sourced(rendered, keys: ["USER_DATA", "USERDATA_ENCODING"])
        #expect(values["USERDATA_ENCODING"] == "base64")
        let decoded = try #require(Data(base64Encoded: values["USER_DATA"] ?? ""))
        #expect(String(decoding: decoded, as: UTF8.self) == "#cloud-config\nhostname: web1\n")
    }

    @Test("network config and vendor data are refused")
    func refusedDocuments() {
        for (spec, field) in [
            (ContextSpec(format: .openNebula, networkConfig: .text("x")), "network-config"),
            (ContextSpec(format: .openNebula, vendorData: .text("x")), "vendor-data"),
        ] {
            let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
            #expect(error?.code == .unsupportedByFormat)
            #expect(error?.field == field)
        }
    }

    @Test("two VM variables that become the same key are an error")
    func keyCollision() {
        let spec = ContextSpec(
            format: .openNebula,
            variables: [VariableSpec(name: "a-b", value: "1"), VariableSpec(name: "a_b", value: "2")])
        let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
        #expect(error?.code == .duplicate)
        #expect(error?.message.contains("A_B") == true)
    }

    @Test("a change to any other file changes context.sh (OpenNebula re-runs only when it changes)")
    func filesDigest() throws {
        func contextSh(_ content: String) throws -> RenderedFile {
            let spec = ContextSpec(format: .openNebula, files: [FileSpec(path: "init.sh", content: .text(content))])
            return try #require(try Fixtures.render(spec).file("context.sh"))
        }
        let first = try contextSh("echo one\n")
        #expect(try contextSh("echo one\n") == first)
        #expect(try contextSh("echo two\n") != first)
        let rendered = try Fixtures.render(
            ContextSpec(format: .openNebula, files: [FileSpec(path: "init.sh", content: .text("x"))]))
        let others = rendered.files.filter { $0.path != "context.sh" }
        let values = try Self.sourced(rendered, keys: ["RECONTEXT_FILES_SHA256"])
        #expect(values["RECONTEXT_FILES_SHA256"] == RenderedContext.computeHash(volumeID: "CONTEXT", files: others))
    }

    @Test("extra files sit next to context.sh")
    func files() throws {
        let spec = ContextSpec(
            format: .openNebula,
            files: [FileSpec(path: "init.sh", content: .text("echo {{host.name}}\n"), isTemplate: true, mode: 0o755)]
        )
        let rendered = try Fixtures.render(spec)
        #expect(rendered.file("init.sh")?.text == "echo hv1\n")
        #expect(rendered.file("init.sh")?.mode == 0o755)
    }

    @Test(
        "shellKey and shellQuote",
        arguments: [
            ("monitoring_endpoint", "MONITORING_ENDPOINT"), ("a-b", "A_B"), ("Mixed_Case9", "MIXED_CASE9"),
            ("_x", "_X"),
        ]
    )
    func shellKey(name: String, key: String) {
        #expect(ContextRenderer.shellKey(name) == key)
        #expect(ContextRenderer.shellQuote("it's") == "'it'\\''s'")
    }
}
