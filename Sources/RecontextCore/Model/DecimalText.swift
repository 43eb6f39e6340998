#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - DecimalText

/// Numbers as fixed-point text for logs and `status`: what `String(format: "%.2f", x)` gave, without
/// Foundation (which the daemon does not link), through the C library's own printf.
public enum DecimalText {
    /// `value` with exactly `decimals` digits after the point, as printf's `%.Nf` writes it
    /// (`fixed(12.345, decimals: 1)` is `"12.3"`, `fixed(7, decimals: 0)` is `"7"`, infinity `"inf"`).
    /// - Parameters:
    ///   - value: The number.
    ///   - decimals: Digits after the point, 0 to 9.
    /// - Returns: The text.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        precondition((0...9).contains(decimals), "DecimalText.fixed: 0 to 9 decimals")
        let format = "%.\(decimals)f"
        var buffer = [CChar](repeating: 0, count: 48)
        let needed = Int(withVaList([value]) { vsnprintf(&buffer, buffer.count, format, $0) })
        if needed >= buffer.count {
            // Only for magnitudes past 10^37: %f writes every digit of the integer part.
            buffer = [CChar](repeating: 0, count: needed + 1)
            _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, format, $0) }
        }
        return String(decoding: buffer.prefix(max(0, needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
