// MARK: - Validation

/// Checks shared by the metadata parser, the renderer and the configuration loader.
///
/// Each check returns `nil` when the value is fine, or a message (without the field name) saying
/// what is wrong. Messages quote offending values through ``Validation/quote(_:)``, and are never
/// given the value of a variable.
public enum Validation {
    /// Variable names that a VM may not use: they are the template's own `vm.*` values or roots.
    public static let reservedVMVariableNames: Set<String> = [
        "name", "uuid", "hostname", "instance_id", "host", "vm", "var",
    ]
    /// Variable names that a host may not use: `host.name` and the template roots.
    public static let reservedHostVariableNames: Set<String> = ["name", "host", "vm", "var"]

    /// A value quoted for an error message: at most 64 characters, control characters escaped.
    public static func quote(_ value: String) -> String {
        var out = "\""
        var count = 0
        for scalar in value.unicodeScalars {
            if count == 64 {
                out += "..."
                break
            }
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            count += 1
        }
        return out + "\""
    }

    /// A variable name: `[A-Za-z_][A-Za-z0-9_-]*`, 1 to `maxLength` characters.
    public static func variableName(_ name: String, maxLength: Int) -> String? {
        guard !name.isEmpty else { return "variable name must not be empty" }
        guard name.utf8.count <= maxLength else {
            return "variable name is longer than \(maxLength) characters"
        }
        var first = true
        for byte in name.utf8 {
            let ok: Bool
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                ok = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                ok = !first
            default:
                ok = false
            }
            if !ok {
                return "variable name \(quote(name)) must match [A-Za-z_][A-Za-z0-9_-]*"
            }
            first = false
        }
        return nil
    }

    /// A file path inside the image; the code says whether it is unsafe or merely too long.
    public static func path(_ path: String, limits: MetadataLimits) -> (ContextError.Code, String)? {
        let quoted = quote(path)
        if path.isEmpty { return (.missing, "path must not be empty") }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return (.unsafePath, "path \(quoted) contains a control character")
        }
        if path.hasPrefix("/") { return (.unsafePath, "must be a relative path, got \(quoted)") }
        if path.contains("\\") { return (.unsafePath, "path \(quoted) contains a backslash; use /") }
        if path.utf8.count > limits.maxPathLength {
            return (.limitExceeded, "path is longer than \(limits.maxPathLength) bytes")
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        for component in components {
            if component.isEmpty { return (.unsafePath, "path \(quoted) has an empty component") }
            if component == "." || component == ".." {
                return (.unsafePath, "path \(quoted) has a \"\(component)\" component")
            }
        }
        if components.count > limits.maxPathComponents {
            return (.limitExceeded, "path \(quoted) is deeper than \(limits.maxPathComponents) levels")
        }
        if components.first == "recontext" {
            return (.duplicate, "path \(quoted) is under recontext/, which is reserved for recontextd's own files")
        }
        return nil
    }

    /// A hostname: dot-separated labels of `[A-Za-z0-9-]`, 1 to 63 characters each, not starting or
    /// ending with `-`, 253 characters at most.
    public static func hostname(_ name: String) -> String? {
        let message = "hostname \(quote(name)) must be labels of letters, digits and '-', separated by dots"
        guard !name.isEmpty, name.utf8.count <= 253 else { return message }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return message }
            for byte in label.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                    continue
                default:
                    return message
                }
            }
        }
        return nil
    }

    /// A hostname made from a domain name: invalid characters become `-`, labels are trimmed to
    /// 63 characters; `vm-<uuid prefix>` if nothing usable is left.
    public static func hostname(fromDomain domain: DomainIdentity) -> String {
        var labels: [String] = []
        for label in domain.name.split(separator: ".") {
            var mapped = String(
                String.UnicodeScalarView(
                    label.unicodeScalars.map { scalar in
                        switch scalar {
                        case "a"..."z", "A"..."Z", "0"..."9": scalar
                        default: "-"
                        }
                    }
                )
            )
            mapped = String(mapped.prefix(63))
            while mapped.hasPrefix("-") { mapped.removeFirst() }
            while mapped.hasSuffix("-") { mapped.removeLast() }
            if !mapped.isEmpty { labels.append(mapped) }
        }
        let joined = labels.joined(separator: ".")
        if joined.isEmpty || joined.utf8.count > 253 {
            return "vm-" + domain.uuid.prefix(8)
        }
        return joined
    }

    /// A volume id: 1 to 32 characters of `[A-Za-z0-9_.-]`.
    public static func volumeID(_ id: String) -> String? {
        let ok =
            !id.isEmpty && id.utf8.count <= 32
            && id.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                    true
                default: false
                }
            }
        return ok ? nil : "volume id \(quote(id)) must be 1 to 32 characters of A-Z, a-z, 0-9, '_', '-', '.'"
    }

    /// A disk target device name as libvirt writes it: `sdz`, `hdc`, `vdb`, `xvda`.
    public static func deviceTarget(_ dev: String) -> String? {
        let ok =
            (2...12).contains(dev.utf8.count)
            && dev.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
                default: false
                }
            }
            && dev.utf8.first.map { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") } == true
        return ok ? nil : "device \(quote(dev)) must be a target device name like \"sdz\" or \"hdc\""
    }

    /// An octal permission mode like `0644` or `644`, at most `0777`.
    public static func mode(_ text: String) -> UInt16? {
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard (3...4).contains(digits.utf8.count),
            digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }),
            let value = UInt16(digits, radix: 8), value <= 0o777
        else { return nil }
        return value
    }

    /// A mode as `0644`.
    public static func formatMode(_ mode: UInt16) -> String {
        let octal = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }

    /// A boolean attribute: `yes`/`no`, `true`/`false`, `1`/`0`.
    public static func bool(_ text: String) -> Bool? {
        switch text {
        case "yes", "true", "1": true
        case "no", "false", "0": false
        default: nil
        }
    }
}
