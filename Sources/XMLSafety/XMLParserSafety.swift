// MARK: - XMLParserSafety

/// Makes untrusted XML safe to hand to Foundation's `XMLParser` on Linux.
///
/// swift-corelibs-foundation's `XMLParser` crashes (SIGSEGV, `strlen(NULL)` in its SAX
/// processing-instruction callback) on a processing instruction without data, `<?name?>`: libxml2
/// passes a NULL data pointer for it. libvirt keeps such an instruction inside a domain's
/// `<metadata>`, so anyone allowed to set any VM's metadata could crash every reader of the domain
/// XML. Found by `Fuzz/` (issue 6). ``sanitized(_:)`` inserts one space before the `?>` of every
/// such instruction, which makes libxml2 pass an empty string instead; nothing else changes
/// (comments and CDATA sections are skipped, so their text is left as it is).
public enum XMLParserSafety {
    /// `bytes` with a space inserted into every data-less processing instruction, or `bytes`
    /// unchanged when there is none (the common case: no copy is made).
    public static func sanitized(_ bytes: [UInt8]) -> [UInt8] {
        var insertions: [Int] = []
        var index = 0
        let count = bytes.count
        func starts(_ literal: [UInt8], at position: Int) -> Bool {
            guard position + literal.count <= count else { return false }
            for offset in 0..<literal.count where bytes[position + offset] != literal[offset] { return false }
            return true
        }
        func skip(past terminator: [UInt8], from position: Int) -> Int {
            var cursor = position
            while cursor < count {
                if starts(terminator, at: cursor) { return cursor + terminator.count }
                cursor += 1
            }
            return count
        }
        while index < count {
            guard bytes[index] == UInt8(ascii: "<") else {
                index += 1
                continue
            }
            if starts(Array("<!--".utf8), at: index) {
                index = skip(past: Array("-->".utf8), from: index + 4)
            } else if starts(Array("<![CDATA[".utf8), at: index) {
                index = skip(past: Array("]]>".utf8), from: index + 9)
            } else if starts(Array("<?".utf8), at: index) {
                // The target runs to the first blank or `?>`; data-less when `?>` follows at once.
                var cursor = index + 2
                while cursor < count, ![0x20, 0x09, 0x0A, 0x0D].contains(bytes[cursor]),
                    !starts(Array("?>".utf8), at: cursor)
                {
                    cursor += 1
                }
                if starts(Array("?>".utf8), at: cursor) { insertions.append(cursor) }
                index = skip(past: Array("?>".utf8), from: cursor)
            } else {
                index += 1
            }
        }
        guard !insertions.isEmpty else { return bytes }
        var result: [UInt8] = []
        result.reserveCapacity(count + insertions.count)
        var start = 0
        for position in insertions {
            result.append(contentsOf: bytes[start..<position])
            result.append(0x20)
            start = position
        }
        result.append(contentsOf: bytes[start...])
        return result
    }
}
