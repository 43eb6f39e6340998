internal import CLibcrypto

// MARK: - SHA256

/// SHA-256 (FIPS 180-4) from libcrypto's EVP interface, fed in pieces.
///
/// One hasher is one libcrypto context; it is not copyable, so a digest cannot be finished twice or
/// fed from two places. libcrypto fails these calls only when it cannot allocate, which ends the
/// process as any failed allocation does.
///
///     var hasher = SHA256()
///     hasher.update(Array("abc".utf8))
///     let digest = hasher.finalize()   // 32 bytes
public struct SHA256: ~Copyable {
    /// The size of a digest in bytes.
    public static let byteCount = 32

    private let context: OpaquePointer

    /// A hasher with nothing fed yet.
    public init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: EVP_MD_CTX_new failed (out of memory)") }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            EVP_MD_CTX_free(context)
            fatalError("libcrypto: EVP_DigestInit_ex(SHA-256) failed")
        }
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Feeds bytes.
    /// - Parameter bytes: The bytes; an empty buffer changes nothing.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else {
            fatalError("libcrypto: EVP_DigestUpdate failed")
        }
    }

    /// Feeds bytes.
    /// - Parameter bytes: The bytes.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Feeds an integer as its big-endian bytes (`UInt32(7)` feeds `00 00 00 07`).
    /// - Parameter value: The integer.
    public mutating func update<T: FixedWidthInteger>(bigEndian value: T) {
        withUnsafeBytes(of: value.bigEndian) { update($0) }
    }

    /// Ends the hasher and gives the digest.
    /// - Returns: The 32 bytes of the digest.
    public consuming func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        var length: UInt32 = 0
        let status = digest.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        guard status == 1, length == Self.byteCount else { fatalError("libcrypto: EVP_DigestFinal_ex failed") }
        return digest
    }

    /// The digest of `bytes` as 64 lower-case hex digits.
    /// - Parameter bytes: The bytes.
    /// - Returns: The hex digest.
    public static func hex(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hex(digest: hasher.finalize())
    }

    /// Bytes as lower-case hex, two digits per byte.
    /// - Parameter digest: The bytes (a digest).
    /// - Returns: The hex text.
    public static func hex(digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(digest.count * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
