import Foundation
import Virt

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
/// it: the element is cut out of the text (with its line's indentation) by ``HookXMLScanner``,
/// whose reading is checked against libxml2's before, and the result is parsed again after.
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
/// When the document cannot be read (malformed, not a `<domain>`, the two readings disagree, too
/// large), the hook steps aside (no output, a warning), unless the raw text names a missing file
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
        let elements: [HookXMLElement]
        do {
            elements = try HookXMLScanner.scan(xml)
        } catch {
            // libxml2's message is the one an operator knows; the scanner's is the fallback.
            let reason: String
            do {
                _ = try HookXMLParserCheck.elements(of: xml)
                reason = "cannot read the domain XML: \(error)"
            } catch let parserError {
                reason = "the domain XML is malformed: \(parserError)"
            }
            return try stepAside(xml, domain: domain, reason: reason)
        }
        do {
            let parsed = try HookXMLParserCheck.elements(of: xml)
            if let index = HookXMLParserCheck.firstDifference(parsed, HookXMLParserCheck.elements(of: elements)) {
                let line = index < elements.count ? elements[index].line : elements.last?.line ?? 0
                return try stepAside(
                    xml, domain: domain,
                    reason: "cannot read the domain XML: the hook's reading differs from libxml2's at line \(line)")
            }
        } catch {
            return try stepAside(xml, domain: domain, reason: "the domain XML is malformed: \(error)")
        }
        guard elements.first?.name == "domain" else {
            return try stepAside(
                xml, domain: domain, reason: "the XML's root element is <\(elements.first?.name ?? "")>, not <domain>")
        }
        return try rewrite(xml, elements: elements, domain: domain)
    }

    // MARK: - Rewriting

    private func rewrite(_ xml: [UInt8], elements: [HookXMLElement], domain: String) throws(HookError) -> HookRewrite {
        var removals: [(index: Int, source: HookCDROMSource)] = []
        var mandatory: [HookCDROMSource] = []
        var warnings: [String] = []
        var cdromNumber = 0
        for (index, disk) in elements.enumerated()
        where disk.depth == 2 && disk.name == "disk" && elements[disk.parent!].name == "devices"
            && disk.attribute("device") == "cdrom"
        {
            cdromNumber += 1
            guard (disk.attribute("type") ?? "file") == "file" else { continue }
            let children = (index + 1)..<(disk.lastDescendant + 1) // empty for <disk .../>
            let target =
                children.first { elements[$0].parent == index && elements[$0].name == "target" }
                .flatMap { elements[$0].attribute("dev") } ?? "#\(cdromNumber)"
            for child in children where elements[child].parent == index && elements[child].name == "source" {
                let element = elements[child]
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
                        removals.append((child, source))
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

        let output = Self.cut(xml, ranges: removals.map { Self.lineRange(of: elements[$0.index], in: xml) })
        // The result must read as the input without the removed subtrees, element for element.
        var removedIndices = Set<Int>()
        for removal in removals { removedIndices.formUnion(removal.index...elements[removal.index].lastDescendant) }
        let expected = HookXMLParserCheck.elements(of: elements).enumerated()
            .filter { !removedIndices.contains($0.offset) }.map(\.element)
        let check: String?
        do {
            let reread = try HookXMLParserCheck.elements(of: output)
            check = HookXMLParserCheck.firstDifference(reread, expected).map {
                "differs from the input at element \($0)"
            }
        } catch {
            check = "is malformed (\(error))"
        }
        if let check {
            // A bug of the hook: never hand libvirt such a document.
            let survivable = removals.allSatisfy { ["optional", "requisite"].contains($0.source.startupPolicy) }
            let message = "internal error: the rewritten domain XML \(check); nothing changed"
            if survivable {
                return HookRewrite(xml: nil, removed: [], warnings: warnings + [message])
            }
            throw HookError(domain: domain, message: message)
        }
        return HookRewrite(xml: output, removed: removals.map(\.source), warnings: warnings)
    }

    /// The bytes of `element`, widened to its line's leading indentation and the line break before
    /// it when only blanks separate them, so that removing it leaves no blank line.
    static func lineRange(of element: HookXMLElement, in xml: [UInt8]) -> Range<Int> {
        var start = element.start
        while start > 0, xml[start - 1] == UInt8(ascii: " ") || xml[start - 1] == UInt8(ascii: "\t") { start -= 1 }
        guard start > 0, xml[start - 1] == UInt8(ascii: "\n") else { return element.start..<element.end }
        start -= 1
        if start > 0, xml[start - 1] == UInt8(ascii: "\r") { start -= 1 }
        return start..<element.end
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
        let escaped = Array(XMLText.escape(directory).utf8) // the same five entities libvirt escapes
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
