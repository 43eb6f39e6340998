import Foundation
import RecontextCore
import TestSupport
import Testing

/// `<context companion="yes">`: the guest companion's packages under `recontext/guest/` in the
/// image of a VM that opts in; a clear error naming the VM and the directory when they are missing.
@Suite("the image carries the guest companion for a VM that opts in")
struct CompanionPackagesTests {
    static let domain = DomainIdentity(name: "web-1", uuid: "4a9c1f0e-7a2b-4c1d-9e8f-0123456789ab")
    static let host = HostFacts(name: "hv-a", variables: ["monitoring_endpoint": "http://mon-a:9090"])
    static let deb = RenderedFile(
        path: "recontext/guest/recontext-guest_0.1.0_all.deb", contents: Array("!<arch>\n".utf8), mode: 0o644)
    static let tarball = RenderedFile(
        path: "recontext/guest/recontext-guest-0.1.0.tar.gz", contents: [0x1f, 0x8b, 8, 0], mode: 0o644)
    static let available = CompanionPackages.available(directory: "/usr/share/recontextd/guest", files: [deb, tarball])

    static func parse(_ attributes: String) throws(ContextError) -> ContextSpec {
        try ContextMetadata.parse(
            "<context xmlns=\"\(ContextMetadata.namespaceURI)\" \(attributes)/>", domain: domain, limits: .default)
    }

    static func render(_ spec: ContextSpec, _ companion: CompanionPackages) throws(ContextError) -> RenderedContext {
        try ContextRenderer().render(
            spec: spec, host: host, domain: domain, defaultFormat: .noCloud, companion: companion)
    }

    @Test("companion=\"yes\" is read and written back; absent is no; anything else is an error naming the field")
    func attribute() throws {
        #expect(try Self.parse("companion=\"yes\"").companion)
        #expect(try !Self.parse("companion=\"no\"").companion)
        #expect(try !Self.parse("format=\"nocloud\"").companion)
        var spec = ContextSpec(format: .noCloud)
        spec.companion = true
        let again = try ContextMetadata.parse(
            ContextMetadata.serialize(spec), domain: Self.domain, limits: .default)
        #expect(again == spec)
        #expect(!ContextMetadata.serialize(ContextSpec()).contains("companion"))
        let error = try #require(throws: ContextError.self) { try Self.parse("companion=\"maybe\"") }
        #expect(error.code == .invalidValue)
        #expect(error.field == "companion")
        #expect(error.description.hasPrefix("domain web-1: companion:"))
    }

    @Test(
        "opted in: the packages under recontext/guest/, mode 0644, in the content hash; not opted in: none",
        arguments: ContextFormat.allCases)
    func packagesInImage(format: ContextFormat) throws {
        var spec = ContextSpec(format: format)
        let without = try Self.render(spec, Self.available)
        #expect(!without.files.contains { $0.path.hasPrefix("recontext/guest/") })
        spec.companion = true
        let with = try Self.render(spec, Self.available)
        #expect(with.file(Self.deb.path) == Self.deb)
        #expect(with.file(Self.tarball.path) == Self.tarball)
        #expect(with.contentHash != without.contentHash)
        #expect(with.files.count == without.files.count + 2)
    }

    @Test("opted in without the packages: the run's error names the domain, the field and the directory")
    func unavailable() throws {
        var spec = ContextSpec(format: .noCloud)
        spec.companion = true
        let missing = CompanionPackages.unavailable(directory: "/srv/nowhere/guest", reason: "no such directory")
        let error = try #require(throws: ContextError.self) { try Self.render(spec, missing) }
        #expect(error.code == .missing)
        #expect(error.field == "companion")
        #expect(error.description.hasPrefix("domain web-1: companion:"))
        #expect(error.message.contains("/srv/nowhere/guest: no such directory"))
        // A VM that does not opt in never needs them.
        spec.companion = false
        #expect(throws: Never.self) { try Self.render(spec, missing) }
    }

    @Test("package names: the .deb and the tarball that make builds, nothing else")
    func packageNames() {
        #expect(CompanionPackages.isPackageName("recontext-guest_0.1.0_all.deb"))
        #expect(CompanionPackages.isPackageName("recontext-guest-0.1.0.tar.gz"))
        for name in ["recontext-guest_0.1.0_amd64.deb", "other_1_all.deb", "recontext-guest.txt", "README", ".x.deb"] {
            #expect(!CompanionPackages.isPackageName(name), "\(name)")
        }
    }

    @Test("in the pipeline: the opted-in VM's run fails naming the directory, the other VM's run goes on")
    func pipelineOneFailsOthersGoOn() async throws {
        var harness = PipelineHarness()
        harness.settings.companion = .unavailable(directory: "/srv/nowhere/guest", reason: "no such directory")
        harness.addDomain(PipelineHarness.web1, metadata: PipelineHarness.metadata("companion=\"yes\""))
        harness.addDomain(PipelineHarness.db1, metadata: PipelineHarness.metadata())
        let failed = await harness.run(PipelineHarness.web1)
        guard case .failed(_, let message, let transient) = failed.outcome else {
            Issue.record("expected a failure, got \(failed.outcome)")
            return
        }
        #expect(message.contains("domain web1: companion:") && message.contains("/srv/nowhere/guest"), "\(message)")
        #expect(!transient)
        let other = await harness.run(PipelineHarness.db1)
        #expect(other.result == "applied", "\(other.outcome)")

        harness.settings.companion = Self.available
        let now = await harness.run(PipelineHarness.web1)
        #expect(now.result == "applied", "\(now.outcome)")
        let written = try #require(harness.store.images.values.first { $0.context?.file(Self.deb.path) != nil })
        #expect(written.context?.file(Self.tarball.path) == Self.tarball)
    }
}
