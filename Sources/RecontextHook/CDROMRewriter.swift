import FoundationEssentials
internal import XML

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - HookFileState

/// Whether a file named by a domain XML exists on this host.
public enum HookFileState: Sendable, Hashable {
    /// It exists (`stat` succeeded).
    case present
    /// It does not (`ENOENT`, or `ENOTDIR` for a missing directory on the way).
    case missing
    /// `stat` failed otherwise (e.g. `EACCES`, `EIO`); the text says how.
    case unknown(String)

    /// `stat(2)` of `path`, following symbolic links as QEMU's `open` would.
    /// The corresponding C function is `stat`.
    @Sendable public static func probe(_ path: String) -> HookFileState {
        var status = stat()
        if stat(path, &status) == 0 { return .present }
        let code = errno
        if code == ENOENT || code == ENOTDIR { return .missing }
        return .unknown(String(cString: strerror(code)))
    }
}

// MARK: - HookError

/// Why the hook refuses a domain XML; libvirt cancels the migration (or restore) with this text.
public struct HookError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The domain's name as libvirt passed it.
    public var domain: String
    /// What is wrong, naming the device, the path and the cause.
    public var message: String

    /// Creates an error.
    public init(domain: String, message: String) {
        self.domain = domain
        self.message = message
    }

    public var description: String { "\(domain): \(message)" }
}

// MARK: - HookCDROMSource

/// A CD-ROM source the hook looked at.
public struct HookCDROMSource: Sendable, Hashable, CustomStringConvertible {
    /// The target device (`sda`, `hdc`), or `cdrom #N` (1-based, in document order) without one.
    public var target: String
    /// The source file, decoded.
    public var path: String
    /// The source's `startupPolicy`, if any.
    public var startupPolicy: String?
    /// The line of the `<source>` element.
    public var line: Int

    public var description: String { "cdrom \(target): \(path)" }
}

// MARK: - HookRewrite

/// What the hook decided about one domain XML.
public struct HookRewrite: Sendable {
    /// The XML to print, or `nil` to print nothing (libvirt keeps the original).
    public var xml: [UInt8]?
    /// The sources removed.
    public var removed: [HookCDROMSource]
    /// Things an operator should know that did not stop the hook.
    public var warnings: [String]
}

// MARK: - HookCDROMRewriter

/// Rewrites an incoming domain XML so that its context CD-ROMs name no image missing on this host.
///
/// For each `<disk device='cdrom'>` (type `file`) directly under `<domain><devices>` whose
/// `<source file=...>` lies directly in the image directory and does not exist here, the
/// `<source>` element is removed: the drive comes up empty and the daemon inserts this host's
/// image when the VM has arrived (a placeholder image would swap the content under the guest with
/// no tray event; see the field notes). Every other byte of the document is kept as libvirt wrote
/// it: the element is cut out of the text (with its line's indentation) at the byte range that
/// the ``XML`` reader (libxml2) reports for it, so quoting, namespaces, whitespace and the
/// metadata of other tools stay as they were, which a parse-and-serialise round trip would not
/// keep.
///
/// Never touched: sources outside the image directory (compared lexically, after dropping `.`
/// components and repeated slashes; a path with `..` is never considered inside), sources that
/// exist, sources whose existence cannot be determined (a warning), `<source>` elements of
/// `<backingStore>` or `<mirror>`, other disks.
///
/// `startupPolicy`: `optional` and `requisite` sources are removed like the rest (libvirt would
/// drop them itself on a migration or restore; removing them first is the same result without
/// the missing-on-start disk-change event). An explicit `mandatory` says the domain must not run
/// without that file: the hook does not override it and fails with a message naming the disk, as
/// libvirt would have failed anyway.
///
/// When the document cannot be read (malformed, a DOCTYPE, not a `<domain>`, too large), the hook
/// steps aside (no output, a warning), unless the raw text names a missing file
/// directly in the image directory: then libvirt would fail on it anyway, and the hook fails
/// first, with a message that says why.
public struct HookCDROMRewriter: Sendable {
    /// The image directory from the configuration.
    public let imageDirectory: String
    /// Whether a path exists on this host.
    public let fileState: @Sendable (String) -> HookFileState
    /// The image directory's components (`..` resolved lexically), `nil` if it is not absolute.
    private let directoryComponents: [Substring]?

    /// Creates a rewriter.
    /// - Parameters:
    ///   - imageDirectory: `images.directory` of the configuration (absolute).
    ///   - fileState: How to learn whether a file exists; ``HookFileState/probe(_:)`` on a host.
    public init(imageDirectory: String, fileState: @escaping @Sendable (String) -> HookFileState = HookFileState.probe)
    {
        self.imageDirectory = imageDirectory
        self.fileState = fileState
        directoryComponents = Self.resolvedComponents(imageDirectory)
    }

    /// Whether `path` names a file directly in the image directory (lexically).
    public func isDirectlyInImageDirectory(_ path: String) -> Bool {
        guard let directoryComponents, let components = Self.lexicalComponents(path),
            components.count == directoryComponents.count + 1
        else { return false }
        return components.dropLast().elementsEqual(directoryComponents)
    }

    /// Decides what to print for a domain XML.
    /// - Parameters:
    ///   - xml: The domain XML from standard input.
    ///   - domain: The domain's name (for messages).
    ///   - complete: False when the input was cut at the size limit.
    /// - Returns: The new XML (or `nil` to keep libvirt's), what was removed, warnings.
    /// - Throws: ``HookError`` when the domain must not start here as it is and the hook cannot
    ///   help: a missing image with `startupPolicy='mandatory'`, or an unreadable XML that names a
    ///   missing image in the image directory.
    public func rewrite(_ xml: [UInt8], domain: String, complete: Bool = true) throws(HookError) -> HookRewrite {
        guard complete else {
            return try stepAside(xml, domain: domain, reason: "the domain XML is larger than the hook reads")
        }
        let root: XMLElement
        do {
            root = try XMLReader.parse(xml, limits: Self.limits)
        } catch {
            return try stepAside(xml, domain: domain, reason: "cannot read the domain XML: \(error)")
        }
        guard root.qualifiedName == "domain" else {
            return try stepAside(
                xml, domain: domain, reason: "the XML's root element is <\(root.qualifiedName)>, not <domain>")
        }
        return try rewrite(xml, root: root, domain: domain)
    }

    /// What the hook reads: libvirt's domain XML nests about 8 levels; the size is
    /// ``QemuHook/maximumInputBytes``.
    static let limits = XMLLimits(maxBytes: QemuHook.maximumInputBytes)

    // MARK: - Rewriting

    private func rewrite(_ xml: [UInt8], root: XMLElement, domain: String) throws(HookError) -> HookRewrite {
        var removals: [(element: XMLElement, source: HookCDROMSource)] = []
        var mandatory: [HookCDROMSource] = []
        var warnings: [String] = []
        var cdromNumber = 0
        let disks = root.children(named: "devices").flatMap { $0.children(named: "disk") }
        for disk in disks where disk.attribute("device") == "cdrom" {
            cdromNumber += 1
            guard (disk.attribute("type") ?? "file") == "file" else { continue }
            let target = disk.children(named: "target").first?.attribute("dev") ?? "#\(cdromNumber)"
            for element in disk.children(named: "source") {
                guard let path = element.attribute("file"), isDirectlyInImageDirectory(path) else { continue }
                let source = HookCDROMSource(
                    target: target, path: path, startupPolicy: element.attribute("startupPolicy"), line: element.line)
                switch fileState(path) {
                case .present:
                    continue
                case .unknown(let cause):
                    warnings.append("\(source): cannot tell whether it exists (\(cause)); left as it is")
                case .missing:
                    if source.startupPolicy == "mandatory" {
                        mandatory.append(source)
                    } else {
                        removals.append((element, source))
                    }
                }
            }
        }
        if !mandatory.isEmpty {
            throw HookError(
                domain: domain,
                message: mandatory.map {
                    "\($0): missing on this host, and its startupPolicy='mandatory' forbids starting without it"
                }.joined(separator: "; "))
        }
        guard !removals.isEmpty else { return HookRewrite(xml: nil, removed: [], warnings: warnings) }

        let output = Self.cut(xml, ranges: removals.map { Self.lineRange(of: $0.element.byteRange, in: xml) })
        return HookRewrite(xml: output, removed: removals.map(\.source), warnings: warnings)
    }

    /// The bytes of an element (`range`), widened to its line's leading indentation and the line
    /// break before it when only blanks separate them, so that removing it leaves no blank line.
    static func lineRange(of range: Range<Int>, in xml: [UInt8]) -> Range<Int> {
        var start = range.lowerBound
        while start > 0, xml[start - 1] == UInt8(ascii: " ") || xml[start - 1] == UInt8(ascii: "\t") { start -= 1 }
        guard start > 0, xml[start - 1] == UInt8(ascii: "\n") else { return range }
        start -= 1
        if start > 0, xml[start - 1] == UInt8(ascii: "\r") { start -= 1 }
        return start..<range.upperBound
    }

    /// `xml` without the (disjoint) `ranges`.
    static func cut(_ xml: [UInt8], ranges: [Range<Int>]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(xml.count)
        var position = 0
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            output.append(contentsOf: xml[position..<range.lowerBound])
            position = range.upperBound
        }
        output.append(contentsOf: xml[position...])
        return output
    }

    // MARK: - Stepping aside

    /// The hook cannot read the document: keep libvirt's XML, unless the raw text names a missing
    /// file directly in the image directory, which libvirt would fail on anyway.
    private func stepAside(_ xml: [UInt8], domain: String, reason: String) throws(HookError) -> HookRewrite {
        let missing = missingImagesNamed(in: xml)
        if !missing.isEmpty {
            throw HookError(
                domain: domain,
                message:
                    "\(reason); it names \(missing.joined(separator: ", ")), missing on this host, so the hook cannot make the domain start here"
            )
        }
        return HookRewrite(xml: nil, removed: [], warnings: ["\(reason); domain XML left unchanged"])
    }

    /// Files directly in the image directory that the raw text names in a quoted value (as
    /// written, or with libvirt's escaping) and that are missing here. Best effort, for messages.
    func missingImagesNamed(in xml: [UInt8]) -> [String] {
        guard let directoryComponents else { return [] }
        let directory = directoryComponents.map { "/" + $0 }.joined() + "/"
        var prefixes = [Array(directory.utf8)]
        let escaped = Array(XMLEscaping.attribute(directory).utf8) // libvirt escapes the same five entities
        if escaped != prefixes[0] { prefixes.append(escaped) }
        var found: [String] = []
        for prefix in prefixes {
            var position = 0
            while position + prefix.count <= xml.count {
                guard xml[position..<(position + prefix.count)].elementsEqual(prefix) else {
                    position += 1
                    continue
                }
                defer { position += prefix.count }
                guard position > 0, xml[position - 1] == UInt8(ascii: "'") || xml[position - 1] == UInt8(ascii: "\"")
                else { continue }
                var end = position + prefix.count
                while end < xml.count, !"'\"<>&/ \t\r\n".utf8.contains(xml[end]) { end += 1 }
                guard end > position + prefix.count, end < xml.count, xml[end] == xml[position - 1],
                    let name = String(validating: xml[(position + prefix.count)..<end], as: UTF8.self)
                else { continue }
                let path = directory + name
                if fileState(path) == .missing, !found.contains(path) { found.append(path) }
            }
        }
        return found
    }

    // MARK: - Paths

    /// The components of an absolute path without empty and `.` components; `nil` for a relative
    /// path or one with `..` (whose meaning depends on symbolic links).
    static func lexicalComponents(_ path: String) -> [Substring]? {
        guard path.hasPrefix("/") else { return nil }
        let components = path.split(separator: "/").filter { $0 != "." }
        return components.contains("..") ? nil : components
    }

    /// The components of an absolute path with `.` dropped and `..` resolved lexically; `nil` for
    /// a relative path. Used for the configured directory only.
    static func resolvedComponents(_ path: String) -> [Substring]? {
        guard path.hasPrefix("/") else { return nil }
        var components: [Substring] = []
        for component in path.split(separator: "/") where component != "." {
            if component == ".." {
                _ = components.popLast()
            } else {
                components.append(component)
            }
        }
        return components
    }
}
