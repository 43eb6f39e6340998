import Foundation
import Testing

@testable import RecontextCore

/// Foundation's `XMLParser` leaks about 216 bytes for every document it refuses; a refused
/// document is therefore remembered (by hash and caps) and not parsed again.
@Suite("XML: a refused document is parsed once")
struct XMLFailureMemoTests {
    static let caps = XMLTree.Caps(maxBytes: 65_536, maxDepth: 16, maxElements: 512)

    @Test("the same malformed document, parsed 100 times, reaches XMLParser once, with the same error")
    func remembered() throws {
        let xml =
            "<recontext:context xmlns:recontext=\"urn:recontextd:context:1\"><file path=\"a\">\(UUID())</recontext:context>"
        let parses = XMLTree.ParseCounter()
        var messages: Set<String> = []
        for _ in 0..<100 {
            let result = XMLTree.$parseCounter.withValue(parses) { XMLTree.parse(xml, caps: Self.caps) }
            guard case .failure(let failure) = result else {
                Issue.record("a malformed document was accepted")
                return
            }
            #expect(failure.code == .malformedXML)
            messages.insert(failure.message)
        }
        #expect(parses.value.load(ordering: .relaxed) == 1)
        #expect(messages.count == 1)
        #expect(messages.first?.contains("not well-formed XML") == true)
    }

    @Test("a well-formed document is parsed every time; other caps parse again")
    func notRememberedWhenGood() throws {
        let good = "<recontext:context xmlns:recontext=\"urn:recontextd:context:1\" n=\"\(UUID())\"/>"
        let parses = XMLTree.ParseCounter()
        for _ in 0..<3 {
            let result = XMLTree.$parseCounter.withValue(parses) { XMLTree.parse(good, caps: Self.caps) }
            guard case .success = result else {
                Issue.record("a well-formed document was refused")
                return
            }
        }
        #expect(parses.value.load(ordering: .relaxed) == 3)

        // Too deep under small caps, fine under the usual ones: the caps are part of the key.
        let deep = "<a n=\"\(UUID())\"><b><c><d/></c></b></a>"
        let small = XMLTree.Caps(maxBytes: 65_536, maxDepth: 2, maxElements: 512)
        guard case .failure = XMLTree.parse(deep, caps: small) else {
            Issue.record("depth cap not applied")
            return
        }
        guard case .success = XMLTree.parse(deep, caps: Self.caps) else {
            Issue.record("a refusal under other caps was reused")
            return
        }
    }
}
