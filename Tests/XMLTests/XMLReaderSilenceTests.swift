import Testing

@testable import XML

#if canImport(Glibc)
    import Glibc
#endif

/// libxml2 prints every error to standard error unless told otherwise; the reader must not.
@Suite("XML reader: libxml2 prints nothing")
struct XMLReaderSilenceTests {
    @Test("refusals leave standard error untouched")
    func silent() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let saved = dup(2)
        dup2(fds[1], 2)
        for text in ["<a><b></a>", "<a>&x;</a>", "<!DOCTYPE a><a/>", "<p:a/>", "<a x='1' x='2'/>", "text"] {
            _ = try? XMLReader.parse(text)
        }
        dup2(saved, 2)
        close(saved)
        close(fds[1])
        var captured: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            captured += chunk[0..<count]
        }
        close(fds[0])
        let text = String(decoding: captured, as: UTF8.self)
        #expect(!text.contains("parser error"), "\(text)")
        #expect(!text.contains("namespace error"), "\(text)")
    }
}
