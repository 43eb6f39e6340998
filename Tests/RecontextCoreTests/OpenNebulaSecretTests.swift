import Foundation
import Testing

@testable import RecontextCore

/// A host secret (`host.secret-variables`) reaches an OpenNebula guest's `context.sh` only when the
/// VM's own templates reference it, as in the other formats; the host's other variables always.
@Suite("OpenNebula: a host secret reaches only the guests that reference it")
struct OpenNebulaSecretTests {
    /// `KEY='value'` lines of context.sh, by key.
    static func contextSh(_ spec: ContextSpec, host: HostFacts = Fixtures.host) throws -> [String: String] {
        var spec = spec
        spec.format = .openNebula
        let text = try #require(try Fixtures.render(spec, host: host).file("context.sh")).text
        var lines: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let key = String(line.prefix { $0 != "=" })
            lines[key] = String(line.dropFirst(key.count + 1))
        }
        return lines
    }

    @Test("a VM that references no host secret gets none, but every other host variable")
    func unreferenced() throws {
        let lines = try Self.contextSh(
            ContextSpec(
                variables: [VariableSpec(name: "role", value: "web")],
                files: [FileSpec(path: "a.conf", content: .text("{{host.zone}} {{var.ntp_server}}"), isTemplate: true)],
                userData: .text("#cloud-config\nntp: {{host.ntp_server}}\n", isTemplate: true)))
        #expect(lines["API_TOKEN"] == nil)
        #expect(lines["MONITORING_ENDPOINT"] == "'http://10.0.0.5:9090'")
        #expect(lines["NTP_SERVER"] == "'10.0.0.1'")
        #expect(lines["ZONE"] == "'rack-1'")
        #expect(lines["ROLE"] == "'web'")
        #expect(lines.values.allSatisfy { !$0.contains("host-secret-token") })
    }

    @Test(
        "a template that references the secret brings it",
        arguments: [
            ContextSpec(files: [FileSpec(path: "t", content: .text("token={{host.api_token}}"), isTemplate: true)]),
            ContextSpec(files: [FileSpec(path: "t", content: .text("{{var.api_token}}"), isTemplate: true)]),
            ContextSpec(
                files: [
                    FileSpec(path: "t", content: .text("{{#host.api_token}}set{{/host.api_token}}"), isTemplate: true)
                ]
            ),
            ContextSpec(files: [
                FileSpec(path: "t", content: .text("{{#host}}{{api_token}}{{/host}}"), isTemplate: true)
            ]),
            ContextSpec(userData: .text("#cloud-config\ntoken: {{host.api_token}}\n", isTemplate: true)),
        ]
    )
    func referenced(spec: ContextSpec) throws {
        #expect(try Self.contextSh(spec)["API_TOKEN"] == "'host-secret-token'")
    }

    @Test("a file that merely contains the words, not as a template, references nothing")
    func notATemplate() throws {
        let spec = ContextSpec(files: [FileSpec(path: "t", content: .text("{{host.api_token}}"))])
        #expect(try Self.contextSh(spec)["API_TOKEN"] == nil)
    }

    @Test("two VMs on one host: only the one that references the secret gets it")
    func twoGuests() throws {
        let asks = ContextSpec(
            files: [FileSpec(path: "db.conf", content: .text("{{host.db_password}}"), isTemplate: true)])
        let host = HostFacts(
            name: "hv1", variables: ["db_password": "hunter2", "api_token": "t0k", "zone": "z"],
            secretVariables: ["db_password", "api_token"])
        let withSecret = try Self.contextSh(asks, host: host)
        let without = try Self.contextSh(ContextSpec(), host: host)
        #expect(withSecret["DB_PASSWORD"] == "'hunter2'")
        #expect(withSecret["API_TOKEN"] == nil)
        #expect(without["DB_PASSWORD"] == nil && without["API_TOKEN"] == nil)
        #expect(withSecret["ZONE"] == "'z'" && without["ZONE"] == "'z'")
    }

    @Test("a VM variable of the same name is the VM's own and always included")
    func vmOverride() throws {
        let spec = ContextSpec(variables: [VariableSpec(name: "api_token", value: "mine", secret: true)])
        #expect(try Self.contextSh(spec)["API_TOKEN"] == "'mine'")
    }
}
