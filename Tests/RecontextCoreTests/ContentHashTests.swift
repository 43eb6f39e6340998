import Foundation
import Testing

@testable import RecontextCore

@Suite("Content hash: deterministic, order-independent, sensitive to every byte")
struct ContentHashTests {
    @Test("known answers for the documented encoding (computed independently with Python's hashlib)")
    func knownAnswers() {
        let files = [
            RenderedFile(path: "user-data", contents: Array("#cloud-config\n{}\n".utf8), mode: 0o600),
            RenderedFile(path: "meta-data", contents: Array("instance-id: \"x\"\n".utf8), mode: 0o644),
        ]
        #expect(
            RenderedContext.computeHash(volumeID: "cidata", files: files)
                == "f476a03017dae965e2081793c4a557c8cce06ba3f5b949cc92074e4d780852b7")
        #expect(
            RenderedContext.computeHash(volumeID: "", files: [])
                == "58b5cdd50c51f17f6036376cb3008fb772e80b97de59fbfe0e86fe156a923f21")
    }

    @Test(
        "the same inputs give the same bytes and hash, whatever order dictionaries were built in",
        arguments: ContextFormat.allCases)
    func deterministic(format: ContextFormat) throws {
        let names = (0..<200).map { "var_\($0)" }
        func host(_ order: [String]) -> HostFacts {
            var variables: [String: String] = [:]
            for name in order { variables[name] = "value of \(name)" }
            return HostFacts(name: "hv1", variables: variables, secretVariables: Set(names.prefix(7)))
        }
        let spec = ContextSpec(
            format: format,
            variables: names.shuffled().prefix(50).map { VariableSpec(name: $0, value: "vm \($0)") },
            files: [
                FileSpec(path: "b/two", content: .text("{{var.var_3}}"), isTemplate: true),
                FileSpec(path: "a/one", content: .bytes([1, 2, 3])),
            ]
        )
        let first = try Fixtures.render(spec, host: host(names))
        for _ in 0..<5 {
            let again = try Fixtures.render(spec, host: host(names.shuffled()))
            #expect(again.contentHash == first.contentHash)
            let same = again == first
            #expect(same)
        }
        #expect(first.contentHash.count == 64)
        #expect(first.contentHash.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test("the hash does not depend on the order the files are given in")
    func orderIndependent() {
        let files = (0..<20).map { RenderedFile(path: "f\($0)", contents: [UInt8($0)], mode: 0o644) }
        let hash = RenderedContext.computeHash(volumeID: "v", files: files)
        #expect(RenderedContext.computeHash(volumeID: "v", files: files.reversed()) == hash)
        #expect(RenderedContext(format: .files, volumeID: "v", files: files.shuffled()).contentHash == hash)
        #expect(
            RenderedContext(format: .files, volumeID: "v", files: files.shuffled()).files.map(\.path)
                == files.map(\.path).sorted())
    }

    static let base = [
        RenderedFile(path: "a", contents: Array("hello".utf8), mode: 0o644),
        RenderedFile(path: "b/c", contents: Array("world".utf8), mode: 0o600),
    ]

    @Test(
        "any change changes the hash",
        arguments: [
            ("one content byte", [RenderedFile(path: "a", contents: Array("hellp".utf8), mode: 0o644), base[1]], "V"),
            ("a mode", [RenderedFile(path: "a", contents: Array("hello".utf8), mode: 0o640), base[1]], "V"),
            ("a path", [RenderedFile(path: "A", contents: Array("hello".utf8), mode: 0o644), base[1]], "V"),
            ("the volume id", base, "W"),
            ("an extra empty file", base + [RenderedFile(path: "z", contents: [], mode: 0o644)], "V"),
            ("a file less", [base[0]], "V"),
            (
                "bytes moved between path and content",
                [RenderedFile(path: "ah", contents: Array("ello".utf8), mode: 0o644), base[1]], "V"
            ),
        ]
    )
    func sensitive(change: String, files: [RenderedFile], volumeID: String) {
        #expect(
            RenderedContext.computeHash(volumeID: volumeID, files: files)
                != RenderedContext.computeHash(volumeID: "V", files: Self.base),
            "\(change)"
        )
    }

    @Test("changes of the inputs that reach the image change the hash; the generation record does not")
    func renderSensitivity() throws {
        let spec = ContextSpec(variables: [VariableSpec(name: "role", value: "web")])
        let base = try Fixtures.render(spec).contentHash
        var otherValue = spec
        otherValue.variables[0].value = "db"
        #expect(try Fixtures.render(otherValue).contentHash != base)
        var otherHost = Fixtures.host
        otherHost.variables["ntp_server"] = "10.0.0.2"
        #expect(try Fixtures.render(spec, host: otherHost).contentHash != base)
        otherHost = Fixtures.host
        otherHost.name = "hv2"
        #expect(try Fixtures.render(spec, host: otherHost).contentHash != base)
        #expect(try Fixtures.render(spec, format: .configDrive).contentHash != base)
        var secretChange = Fixtures.host
        secretChange.variables["api_token"] = "rotated"
        // A host secret reaches the image only through the VM's templates (and then, in
        // OpenNebula, context.sh too): a VM that does not reference it keeps its hash.
        #expect(try Fixtures.render(spec, host: secretChange).contentHash == base)
        #expect(
            try Fixtures.render(ContextSpec(format: .openNebula), host: secretChange).contentHash
                == (try Fixtures.render(ContextSpec(format: .openNebula)).contentHash)
        )
        let referencing = ContextSpec(
            format: .openNebula,
            files: [FileSpec(path: "t", content: .text("{{#host.api_token}}x{{/host.api_token}}"), isTemplate: true)])
        #expect(
            try Fixtures.render(referencing, host: secretChange).contentHash
                != (try Fixtures.render(referencing).contentHash)
        )
        // Same content on the same host: same hash, whatever generation the image gets.
        #expect(try Fixtures.render(spec).contentHash == base)
    }
}
