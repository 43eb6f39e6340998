import FoundationEssentials
internal import XML

// MARK: - AppliedMetadata

/// The applied-state record in a domain's `<metadata>`: what recontextd last attached.
///
/// Written by the daemon after each successful attach, under its own namespace so that editing the
/// desired data (``ContextMetadata``) never touches it:
///
/// ```xml
/// <applied generation="7" content-hash="9f86d0...0a08" host="hv2"
///          time="2025-11-26T02:33:00Z" image="/var/lib/recontextd/images/web1-7.iso" format="nocloud"/>
/// ```
///
/// All attributes above are required. `time` is ISO 8601 in UTC, whole seconds. The guest's
/// acknowledgement over the host-guest channel adds `guest-generation`, `guest-result` and
/// `guest-time` (all three or none).
public enum AppliedMetadata {
    /// The namespace of the applied-state element.
    public static let namespaceURI = "urn:recontextd:applied:1"
    /// The prefix (`--key`) recontextd uses when it writes the element.
    public static let defaultPrefix = "recontext-applied"

    static let attributes = ["generation", "content-hash", "host", "time", "image", "format"]
    static let guestAttributes = ["guest-generation", "guest-result", "guest-time"]

    /// Parses an applied-state record.
    /// - Parameter xml: The element as libvirt returns it.
    /// - Returns: The record.
    /// - Throws: ``ContextError`` (with an empty domain) naming the field.
    public static func parse(_ xml: String) throws(ContextError) -> AppliedState {
        func fail(_ code: ContextError.Code, _ field: String, _ message: String) -> ContextError {
            ContextError(code, domain: "", field: field, message)
        }
        let root: XMLElement
        switch XMLTree.parse(xml, caps: XMLTree.Caps(maxBytes: 64 << 10, maxDepth: 2, maxElements: 4)) {
        case .success(let element): root = element
        case .failure(let failure): throw fail(failure.code, "applied", failure.message)
        }
        guard root.name == "applied", root.namespaceURI.isEmpty || root.namespaceURI == namespaceURI else {
            throw fail(
                .wrongRoot, "applied", "root element is <\(root.name)>, expected <applied> in \(namespaceURI)")
        }
        for name in root.attributes.map(\.qualifiedName).sorted()
        where !attributes.contains(name) && !guestAttributes.contains(name) {
            throw fail(
                .unknownAttribute, "applied.\(name)",
                "unknown attribute (allowed: \((attributes + guestAttributes).joined(separator: ", ")))")
        }
        if let child = root.children.first {
            throw fail(.unknownElement, "applied", "element <\(child.name)> is not allowed inside <applied>")
        }
        func required(_ name: String) throws(ContextError) -> String {
            guard let value = root.attribute(name) else {
                throw fail(.missing, "applied.\(name)", "attribute is missing")
            }
            return value
        }
        let generationText = try required("generation")
        guard let generation = UInt64(generationText) else {
            throw fail(
                .invalidValue, "applied.generation",
                "expected a non-negative integer, got \(Validation.quote(generationText))")
        }
        let hash = try required("content-hash")
        let host = try required("host")
        let timeText = try required("time")
        guard let time = parseTime(timeText) else {
            throw fail(
                .invalidValue, "applied.time",
                "expected an ISO 8601 UTC time like 2025-11-26T02:33:00Z, got \(Validation.quote(timeText))")
        }
        let image = try required("image")
        let formatText = try required("format")
        guard let format = ContextFormat(rawValue: formatText) else {
            throw fail(.invalidValue, "applied.format", "unknown format \(Validation.quote(formatText))")
        }
        return AppliedState(
            generation: generation, contentHash: hash, host: host, time: time, imagePath: image, format: format,
            guest: try parseGuest(root))
    }

    /// The `guest-*` attributes: all three or none.
    static func parseGuest(_ root: XMLElement) throws(ContextError) -> GuestApplied? {
        let values = guestAttributes.map { root.attribute($0) }
        if values.allSatisfy({ $0 == nil }) { return nil }
        guard let generationText = values[0], let resultText = values[1], let timeText = values[2] else {
            throw ContextError(
                .missing, domain: "", field: "applied.guest",
                "guest-generation, guest-result and guest-time go together")
        }
        guard let generation = UInt64(generationText) else {
            throw ContextError(
                .invalidValue, domain: "", field: "applied.guest-generation",
                "expected a non-negative integer, got \(Validation.quote(generationText))")
        }
        guard let result = GuestAck.Result(rawValue: resultText) else {
            throw ContextError(
                .invalidValue, domain: "", field: "applied.guest-result",
                "expected ok, hooks-failed or failed, got \(Validation.quote(resultText))")
        }
        guard let time = parseTime(timeText) else {
            throw ContextError(
                .invalidValue, domain: "", field: "applied.guest-time",
                "expected an ISO 8601 UTC time, got \(Validation.quote(timeText))")
        }
        return GuestApplied(generation: generation, result: result, time: time)
    }

    /// Writes an applied-state record (no namespace declaration; libvirt adds it).
    /// - Parameter state: The record.
    /// - Returns: The XML text.
    public static func serialize(_ state: AppliedState) -> String {
        let attributes = [
            ("generation", String(state.generation)),
            ("content-hash", state.contentHash),
            ("host", state.host),
            ("time", formatTime(state.time)),
            ("image", state.imagePath),
            ("format", state.format.rawValue),
        ]
        let guest =
            state.guest.map {
                [
                    ("guest-generation", String($0.generation)), ("guest-result", $0.result.rawValue),
                    ("guest-time", formatTime($0.time)),
                ]
            } ?? []
        return "<applied" + ContextMetadata.attributeText(attributes + guest) + "/>"
    }

    /// `yyyy-MM-ddTHH:mm:ssZ` in UTC.
    static func formatTime(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(year)
        let paddedYear = String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText
        return
            "\(paddedYear)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }

    /// Parses `yyyy-MM-ddTHH:mm:ssZ` (a fractional part is accepted and dropped).
    static func parseTime(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        if bytes.count > 20 {
            guard bytes[19] == UInt8(ascii: "."), number(20..<(bytes.count - 1)) != nil else { return nil }
        } else if bytes[19] != UInt8(ascii: "Z") {
            return nil
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3600 + minute * 60 + second))
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date for a number of days since 1970-01-01.
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
