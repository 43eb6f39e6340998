import Testing

@testable import RecontextCore

@Suite("Printing specs, host facts and rendered files never shows a secret")
struct RedactionTests {
    @Test("descriptions leave secrets and contents out")
    func redacted() throws {
        let spec = try Fixtures.parse(Fixtures.libvirtXML)
        let rendered = try Fixtures.render(ContextSpec(format: .openNebula, variables: spec.variables))
        let texts = [
            "\(spec)", String(reflecting: spec), "\(Fixtures.host)", String(reflecting: Fixtures.host), "\(rendered)",
            String(reflecting: rendered),
            "\(rendered.files)",
        ]
        for text in texts {
            #expect(!text.contains("ss$word"), "\(text)")
            #expect(!text.contains("host-secret-token"), "\(text)")
        }
        #expect("\(spec.variables[0])" == "role=\"web\"")
        #expect("\(spec.variables[1])" == "db_password=<secret>")
        #expect("\(Fixtures.host)".contains("api_token=<secret>"))
        #expect("\(Fixtures.host)".contains("zone=\"rack-1\""))
        #expect("\(rendered)".contains("context.sh ("))
        #expect("\(rendered)".hasPrefix("opennebula CONTEXT sha256:\(rendered.contentHash)"))
    }
}
