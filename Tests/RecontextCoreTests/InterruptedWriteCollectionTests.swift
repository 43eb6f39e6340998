import Foundation
import RecontextConfiguration
import Testing

@testable import RecontextCore

/// Temporary files of a write interrupted by SIGKILL, and the collection grace (issue 6, item 2).
@Suite("Image naming: temporaries of interrupted writes; pipeline.collect-grace")
struct InterruptedWriteCollectionTests {
    static let uuid = "0b9e4a2c-3f1d-4c5e-8a7b-9c0d1e2f3a4b"

    @Test("the atomic writer's temporary names map back to the image they were to become")
    func temporaryNames() {
        let final = "\(Self.uuid)-g3-0123456789ab.iso"
        let parsed = ImageNaming.parseTemporary(".\(final).tmp-4242-9f3c2a")
        #expect(parsed?.uuid == Self.uuid)
        #expect(parsed?.generation == 3)
        #expect(ImageNaming.parse(".\(final).tmp-4242-9f3c2a") == nil, "a temporary never looks final")
        for name in [
            final, ".\(final)", ".\(final).tmp-", ".\(final).tmp-12-", ".\(final).tmp-x-1f", ".\(final).tmp-12-zz",
            ".other.iso.tmp-1-ab", "\(final).tmp-1-ab", ".tmp-4242-9f3c2a",
        ] {
            #expect(ImageNaming.parseTemporary(name) == nil, "\(name)")
        }
    }

    @Test("pipeline.collect-grace: default 120 s, seconds or a duration, 0 allowed, negative refused")
    func collectGrace() throws {
        #expect(DaemonConfiguration.Pipeline().collectGrace == .seconds(120))
        let zero = try ConfigurationLoader.parse(yaml: "pipeline:\n  collect-grace: 0\n", file: "t.yaml", hostName: "h")
        #expect(zero.pipeline.collectGrace == .zero)
        let minutes = try ConfigurationLoader.parse(
            yaml: "pipeline:\n  collect-grace: 5m\n", file: "t.yaml", hostName: "h")
        #expect(minutes.pipeline.collectGrace == .seconds(300))
        #expect(throws: ConfigurationErrors.self) {
            try ConfigurationLoader.parse(yaml: "pipeline:\n  collect-grace: -1\n", file: "t.yaml", hostName: "h")
        }
    }
}
