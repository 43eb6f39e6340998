import Digest
import Foundation
import TestSupport
import Testing

/// SHA-256 from libcrypto: the FIPS 180-4 examples, pieces against the whole, and coreutils'
/// `sha256sum` (a reader we did not write) on data of awkward sizes.
@Suite("Digest: SHA-256 through libcrypto")
struct SHA256Tests {
    @Test("the FIPS 180-4 examples")
    func knownAnswers() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("fed in pieces (empty ones included) it gives the digest of the whole")
    func pieces() {
        var generator = SystemRandomNumberGenerator()
        let whole = (0..<100_003).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var hasher = SHA256()
        var offset = 0
        for size in [0, 1, 63, 64, 65, 0, 4096, 12345] {
            hasher.update(Array(whole[offset..<offset + size]))
            offset += size
        }
        hasher.update(Array(whole[offset...]))
        #expect(SHA256.hex(digest: hasher.finalize()) == SHA256.hex(whole))
    }

    @Test("integers are fed as their big-endian bytes")
    func bigEndianIntegers() {
        var hasher = SHA256()
        hasher.update(bigEndian: UInt32(0x0102_0304))
        hasher.update(bigEndian: UInt16(0x0506))
        hasher.update(bigEndian: UInt64(7))
        #expect(SHA256.hex(digest: hasher.finalize()) == SHA256.hex([1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 7]))
    }

    @Test("agrees with coreutils' sha256sum", arguments: [0, 1, 55, 56, 63, 64, 65, 1000, 65536, 1_048_577])
    func agreesWithSha256sum(size: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let path = NSTemporaryDirectory() + "digest-\(size)-\(UUID().uuidString.prefix(8))"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try ProcessRunner.run("/usr/bin/sha256sum", [path])
        #expect(output.split(separator: " ").first.map(String.init) == SHA256.hex(bytes))
    }
}
