import Foundation
import RecontextCore
import TestSupport
import Testing
import XML

@testable import RecontextDaemon
@testable import RecontextHook

/// `recontextd hook qemu`: the rewrite of an incoming domain XML, the configuration policy, and
/// the `sh` front end `systemd/libvirt-hook-qemu` with the built binary.
@Suite("libvirt qemu hook")
struct HookTests {
    // MARK: - Fixtures

    static let directory = "/var/lib/recontextd/images"
    static let uuid = "0b5c6a0e-1d2f-4a3b-9c8d-7e6f5a4b3c2d"
    static let imageSATA = "\(directory)/\(uuid)-g3-0123456789ab.iso"
    static let imageIDE = "\(directory)/\(uuid)-g2-ba9876543210.iso"

    /// The incoming XML of `migrate begin` as libvirt 9.0 passed it to a hook on this machine (the
    /// migratable form of a running q35 VM), with an IDE drive, an OS disk, more CD-ROMs and the
    /// applied-state record added. `sda` and `hdc` hold context images.
    static let domainXML = """
        <domain type='kvm'>
          <name>vm1</name>
          <uuid>\(uuid)</uuid>
          <metadata>
            <recontext:context xmlns:recontext="urn:recontextd:context:1" format="nocloud">
              <recontext:file path="etc/motd" template="yes">host={{host.name}} &amp; more</recontext:file>
            </recontext:context>
            <recontext-applied:applied xmlns:recontext-applied="urn:recontextd:applied:1" generation="3" content-hash="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" host="hv1" time="2025-11-26T02:33:00Z" image="\(imageSATA)" format="nocloud"/>
            <other:tag xmlns:other="http://example.com/other" other:attr="v" xml:lang="en"><![CDATA[<source file='\(imageSATA)'/>]]><!-- a comment --></other:tag>
          </metadata>
          <memory unit='KiB'>131072</memory>
          <currentMemory unit='KiB'>131072</currentMemory>
          <vcpu placement='static'>1</vcpu>
          <resource>
            <partition>/machine</partition>
          </resource>
          <os>
            <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
            <boot dev='hd'/>
          </os>
          <cpu mode='custom' match='exact' check='none'>
            <model fallback='forbid'>qemu64</model>
          </cpu>
          <clock offset='utc'/>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='\(directory)/not-a-cdrom.qcow2'/>
              <backingStore/>
              <target dev='vda' bus='virtio'/>
              <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='\(imageSATA)'/>
              <backingStore/>
              <target dev='sda' bus='sata'/>
              <readonly/>
              <address type='drive' controller='0' bus='0' target='0' unit='0'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='/srv/iso/debian-12.iso'/>
              <backingStore/>
              <target dev='sdb' bus='sata'/>
              <readonly/>
              <address type='drive' controller='0' bus='0' target='0' unit='1'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <target dev='sdc' bus='scsi'/>
              <readonly/>
              <address type='drive' controller='0' bus='0' target='0' unit='2'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='\(directory)/sub/\(uuid)-g1-0123456789ab.iso'/>
              <backingStore/>
              <target dev='sdd' bus='scsi'/>
              <readonly/>
              <address type='drive' controller='0' bus='0' target='0' unit='3'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='\(imageIDE)'/>
              <backingStore/>
              <target dev='hdc' bus='ide'/>
              <readonly/>
              <address type='drive' controller='0' bus='1' target='0' unit='0'/>
            </disk>
            <controller type='scsi' index='0' model='virtio-scsi'>
              <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
            </controller>
            <controller type='usb' index='0' model='none'/>
            <controller type='sata' index='0'>
              <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
            </controller>
            <controller type='pci' index='0' model='pcie-root'/>
            <input type='mouse' bus='ps2'/>
            <input type='keyboard' bus='ps2'/>
            <audio id='1' type='none'/>
            <memballoon model='none'/>
          </devices>
        </domain>

        """

    /// `xml` without the lines that start (after indentation) with one of `fragments`.
    static func removingLines(_ xml: String, containing fragments: [String]) -> String {
        xml.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in !fragments.contains { line.drop { $0 == " " }.hasPrefix($0) } }
            .joined(separator: "\n")
    }

    /// A file-state probe where exactly `present` exist.
    static func files(_ present: Set<String>) -> @Sendable (String) -> HookFileState {
        { present.contains($0) ? .present : .missing }
    }

    static func rewriter(present: Set<String> = [], directory: String = Self.directory) -> HookCDROMRewriter {
        HookCDROMRewriter(imageDirectory: directory, fileState: files(present))
    }

    static func text(_ bytes: [UInt8]?) -> String? {
        bytes.map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: - Rewrite

    @Test("a missing image in the directory: its <source> goes, every other byte stays")
    func missingImageRemoved() throws {
        let rewrite = try Self.rewriter().rewrite(Array(Self.domainXML.utf8), domain: "vm1")
        let expected = Self.removingLines(
            Self.domainXML, containing: ["<source file='\(Self.imageSATA)'/>", "<source file='\(Self.imageIDE)'/>"])
        #expect(Self.text(rewrite.xml) == expected)
        #expect(rewrite.removed.map(\.target) == ["sda", "hdc"])
        #expect(rewrite.removed.map(\.path) == [Self.imageSATA, Self.imageIDE])
        #expect(rewrite.warnings.isEmpty)
        // The rest reads the same to libvirt's parser: metadata (with the image path in the applied
        // record and inside CDATA), the OS disk in the same directory, other CD-ROMs.
        let output = try #require(rewrite.xml)
        let devices = try #require(try XMLReader.parse(output).children(named: "devices").first)
        #expect(devices.children(named: "disk").filter { $0.attribute("device") == "cdrom" }.count == 5)
        #expect(Self.text(output)!.contains("image=\"\(Self.imageSATA)\""))
        #expect(Self.text(output)!.contains("<![CDATA[<source file='\(Self.imageSATA)'/>]]>"))
        #expect(Self.text(output)!.contains("<source file='\(Self.directory)/not-a-cdrom.qcow2'/>"))
    }

    @Test("images that exist here: nothing printed")
    func existingImagesUntouched() throws {
        let rewrite = try Self.rewriter(present: [Self.imageSATA, Self.imageIDE]).rewrite(
            Array(Self.domainXML.utf8), domain: "vm1")
        #expect(rewrite.xml == nil)
        #expect(rewrite.removed.isEmpty)
    }

    @Test("one image exists, the other does not: only the missing one goes")
    func onlyMissingRemoved() throws {
        let rewrite = try Self.rewriter(present: [Self.imageSATA]).rewrite(Array(Self.domainXML.utf8), domain: "vm1")
        #expect(
            Self.text(rewrite.xml)
                == Self.removingLines(Self.domainXML, containing: ["<source file='\(Self.imageIDE)'/>"]))
        #expect(rewrite.removed.map(\.target) == ["hdc"])
    }

    @Test("sources outside the directory (also in a subdirectory) are never touched, missing or not")
    func outsideDirectoryUntouched() throws {
        // Everything is missing, but with another image directory nothing of ours is in the XML.
        let rewrite = try Self.rewriter(directory: "/srv/other-images").rewrite(
            Array(Self.domainXML.utf8), domain: "vm1")
        #expect(rewrite.xml == nil)
        #expect(rewrite.removed.isEmpty)
        let parent = try Self.rewriter(directory: "/var/lib/recontextd").rewrite(
            Array(Self.domainXML.utf8), domain: "vm1")
        #expect(parent.xml == nil)
    }

    @Test(
        "which paths lie directly in the image directory",
        arguments: [
            ("/var/lib/recontextd/images/a.iso", true),
            ("/var/lib/recontextd/images//a.iso", true),
            ("//var/lib/recontextd/images/./a.iso", true),
            ("/var/lib/recontextd/images/sub/a.iso", false),
            ("/var/lib/recontextd/images/../images/a.iso", false),
            ("/var/lib/recontextd/imagesX/a.iso", false),
            ("/var/lib/recontextd/images", false),
            ("/var/lib/recontextd/images/", false),
            ("var/lib/recontextd/images/a.iso", false),
            ("/a.iso", false),
        ])
    func directlyInDirectory(path: String, expected: Bool) {
        #expect(Self.rewriter().isDirectlyInImageDirectory(path) == expected)
        #expect(Self.rewriter(directory: "/var/lib/recontextd/images/").isDirectlyInImageDirectory(path) == expected)
        #expect(
            Self.rewriter(directory: "/var/lib/./recontextd/x/../images").isDirectlyInImageDirectory(path) == expected)
    }

    /// One context CD-ROM with `source` as its `<source>` line.
    static func oneCDROM(_ source: String, type: String = "file", device: String = "cdrom") -> String {
        """
        <domain type='kvm'>
          <name>vm1</name>
          <devices>
            <disk type='\(type)' device='\(device)'>
              <driver name='qemu' type='raw'/>
              \(source)
              <target dev='sda' bus='sata'/>
              <readonly/>
            </disk>
          </devices>
        </domain>
        """
    }

    @Test(
        "startupPolicy optional, requisite or none: removed with the <source>",
        arguments: [nil, "optional", "requisite"])
    func startupPolicyRemoved(policy: String?) throws {
        let attribute = policy.map { " startupPolicy='\($0)'" } ?? ""
        let xml = Self.oneCDROM("<source file='\(Self.imageSATA)'\(attribute)/>")
        let rewrite = try Self.rewriter().rewrite(Array(xml.utf8), domain: "vm1")
        #expect(Self.text(rewrite.xml) == Self.removingLines(xml, containing: ["<source "]))
        #expect(rewrite.removed.first?.startupPolicy == policy)
    }

    @Test("startupPolicy='mandatory' on a missing image: refused with a message naming the disk")
    func startupPolicyMandatory() throws {
        let xml = Self.oneCDROM("<source file='\(Self.imageSATA)' startupPolicy='mandatory'/>")
        let error = #expect(throws: HookError.self) { try Self.rewriter().rewrite(Array(xml.utf8), domain: "vm1") }
        #expect(error?.description.contains("vm1: cdrom sda: \(Self.imageSATA)") == true)
        #expect(error?.description.contains("mandatory") == true)
        // Present: nothing to say.
        #expect(try Self.rewriter(present: [Self.imageSATA]).rewrite(Array(xml.utf8), domain: "vm1").xml == nil)
    }

    @Test("a <source> with children, entity-escaped path, double quotes: the whole element goes")
    func sourceWithChildren() throws {
        let path = "\(Self.directory)/a&b'c.iso"
        let xml = Self.oneCDROM(
            "<source file=\"\(Self.directory)/a&amp;b&apos;c.iso\" index=\"1\">\n        <seclabel model='dac' relabel='no'/>\n      </source>"
        )
        let rewrite = try Self.rewriter().rewrite(Array(xml.utf8), domain: "vm1")
        #expect(rewrite.removed.map(\.path) == [path])
        #expect(Self.text(rewrite.xml) == Self.removingLines(xml, containing: ["<source ", "<seclabel ", "</source>"]))
    }

    @Test("only a <source> directly in a cdrom <disk> of type file under <devices> counts; a childless <disk/> is fine")
    func otherSourcesUntouched() throws {
        let inBackingStore = Self.oneCDROM(
            "<backingStore type='file'><format type='raw'/><source file='\(Self.imageSATA)'/></backingStore>")
        #expect(try Self.rewriter().rewrite(Array(inBackingStore.utf8), domain: "vm1").xml == nil)
        let block = Self.oneCDROM("<source dev='\(Self.imageSATA)'/>", type: "block")
        #expect(try Self.rewriter().rewrite(Array(block.utf8), domain: "vm1").xml == nil)
        let disk = Self.oneCDROM("<source file='\(Self.imageSATA)'/>", device: "disk")
        #expect(try Self.rewriter().rewrite(Array(disk.utf8), domain: "vm1").xml == nil)
        let childless =
            "<domain><devices><disk type='file' device='cdrom'/><disk device='cdrom'><source file='\(Self.imageSATA)'/></disk></devices></domain>"
        let childlessRewrite = try Self.rewriter().rewrite(Array(childless.utf8), domain: "vm1")
        #expect(
            Self.text(childlessRewrite.xml)
                == "<domain><devices><disk type='file' device='cdrom'/><disk device='cdrom'></disk></devices></domain>")
        #expect(childlessRewrite.removed.map(\.target) == ["#2"])
        let outsideDevices =
            "<domain><metadata><disk device='cdrom'><source file='\(Self.imageSATA)'/></disk></metadata></domain>"
        #expect(try Self.rewriter().rewrite(Array(outsideDevices.utf8), domain: "vm1").xml == nil)
    }

    @Test("a file whose existence cannot be told is left alone, with a warning")
    func unknownFileState() throws {
        let rewriter = HookCDROMRewriter(imageDirectory: Self.directory) { _ in .unknown("Permission denied") }
        let rewrite = try rewriter.rewrite(Array(Self.domainXML.utf8), domain: "vm1")
        #expect(rewrite.xml == nil)
        #expect(rewrite.warnings.count == 2)
        #expect(rewrite.warnings.first?.contains("Permission denied") == true)
    }

    @Test("CRLF line ends and no indentation are handled")
    func lineEnds() throws {
        let lf = Self.oneCDROM("<source file='\(Self.imageSATA)'/>")
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let rewrite = try Self.rewriter().rewrite(Array(crlf.utf8), domain: "vm1")
        #expect(
            Self.text(rewrite.xml)
                == Self.removingLines(lf, containing: ["<source "]).replacingOccurrences(of: "\n", with: "\r\n"))
        let compact =
            "<domain><devices><disk device='cdrom'><source file='\(Self.imageSATA)'/><target dev='sda'/></disk></devices></domain>"
        let compactRewrite = try Self.rewriter().rewrite(Array(compact.utf8), domain: "vm1")
        #expect(
            Self.text(compactRewrite.xml)
                == "<domain><devices><disk device='cdrom'><target dev='sda'/></disk></devices></domain>")
    }

    // MARK: - Unreadable input

    @Test(
        "unreadable XML that names a missing image in the directory: refused",
        arguments: [
            "<domain><devices><disk device='cdrom'><source file='\(Self.imageSATA)'/></devices></domain>",
            "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain><devices><disk device='cdrom'><source file='\(Self.imageSATA)'/></disk></devices></domain>",
            "<domain><devices><disk device='cdrom'><source file='\(Self.imageSATA)'/></disk></devices></domain><second/>",
        ])
    func unreadableNamingOurImage(xml: String) throws {
        let error = #expect(throws: HookError.self) { try Self.rewriter().rewrite(Array(xml.utf8), domain: "vm1") }
        #expect(error?.message.contains(Self.imageSATA) == true)
        // When the image exists, libvirt decides: the hook steps aside.
        let rewrite = try Self.rewriter(present: [Self.imageSATA]).rewrite(Array(xml.utf8), domain: "vm1")
        #expect(rewrite.xml == nil)
        #expect(rewrite.warnings.count == 1)
    }

    @Test(
        "unreadable or foreign XML that names no image of ours: warning, unchanged",
        arguments: [
            "", "not xml", "<domain><devices></domain>", "<domain a='1' a='2'/>", "<domain a='&bogus;'/>",
            "<network><name>default</name></network>",
        ])
    func unreadableNotOurs(xml: String) throws {
        let rewrite = try Self.rewriter().rewrite(Array(xml.utf8), domain: "vm1")
        #expect(rewrite.xml == nil)
        #expect(rewrite.warnings.count == 1)
    }

    @Test("input cut at the size limit: refused only if it names a missing image")
    func truncatedInput() throws {
        let bytes = Array(Self.domainXML.utf8)
        #expect(throws: HookError.self) { try Self.rewriter().rewrite(bytes, domain: "vm1", complete: false) }
        // Any missing file named in the directory counts, the OS disk there too.
        let all: Set = [Self.imageSATA, Self.imageIDE, "\(Self.directory)/not-a-cdrom.qcow2"]
        #expect(throws: HookError.self) {
            try Self.rewriter(present: [Self.imageSATA, Self.imageIDE]).rewrite(bytes, domain: "vm1", complete: false)
        }
        let present = try Self.rewriter(present: all).rewrite(bytes, domain: "vm1", complete: false)
        #expect(present.xml == nil)
        #expect(present.warnings.first?.contains("larger") == true)
    }

    @Test("the byte ranges the reader gives are the elements' text in the fixture")
    func byteRangesOfTheFixture() throws {
        let bytes = Array(Self.domainXML.utf8)
        let root = try XMLReader.parse(bytes)
        #expect(root.byteRange == 0..<(bytes.count - 1))
        let disks = try #require(root.children(named: "devices").first).children(named: "disk")
        let sources = disks.flatMap { $0.children(named: "source") }
        #expect(sources.count == 5)
        for source in sources {
            let text = String(decoding: bytes[source.byteRange], as: UTF8.self)
            #expect(text == "<source file='\(try #require(source.attribute("file")))'/>")
        }
        let last = try #require(disks.last)
        #expect(String(decoding: bytes[last.byteRange], as: UTF8.self).hasPrefix("<disk type='file' device='cdrom'>"))
        #expect(String(decoding: bytes[last.byteRange], as: UTF8.self).hasSuffix("</disk>"))
    }

    // MARK: - QemuHook

    /// A configuration file in a new directory; returns its path.
    static func configFile(_ yaml: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hook-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("recontextd.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(
        "operations other than migrate/restore begin: nothing read, nothing printed, exit 0",
        arguments: [
            ("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"), ("release", "end"),
            ("migrate", "end"), ("restore", "end"), ("reconnect", "begin"), ("attach", "begin"), ("migrate", "-"),
        ])
    func otherOperations(operation: String, subOperation: String) {
        let hook = QemuHook(configurationPath: "/nonexistent/recontextd.yaml", fileState: Self.files([]))
        var read = false
        let outcome = hook.run(.init(domain: "vm1", operation: operation, subOperation: subOperation)) {
            read = true
            return (Array(Self.domainXML.utf8), true)
        }
        #expect(!read)
        #expect(outcome.standardOutput.isEmpty && outcome.messages.isEmpty && outcome.exitStatus == 0)
    }

    @Test("migrate begin and restore begin rewrite", arguments: ["migrate", "restore"])
    func rewritingOperations(operation: String) throws {
        let config = try Self.configFile("images:\n  directory: \(Self.directory)\n")
        defer { try? FileManager.default.removeItem(atPath: (config as NSString).deletingLastPathComponent) }
        let hook = QemuHook(configurationPath: config, fileState: Self.files([Self.imageIDE]))
        let outcome = hook.run(.init(domain: "vm1", operation: operation, subOperation: "begin")) {
            (Array(Self.domainXML.utf8), true)
        }
        #expect(outcome.exitStatus == 0)
        #expect(
            Self.text(outcome.standardOutput)
                == Self.removingLines(Self.domainXML, containing: ["<source file='\(Self.imageSATA)'/>"]))
        #expect(outcome.messages.map(\.severity) == [.notice])
        #expect(
            outcome.messages.first?.description.hasPrefix("recontextd hook: vm1: \(operation) begin: cdrom sda: ")
                == true)
    }

    @Test("no configuration file: warning, XML unchanged, exit 0")
    func missingConfiguration() {
        let hook = QemuHook(configurationPath: "/nonexistent/recontextd.yaml", fileState: Self.files([]))
        let outcome = hook.run(.init(domain: "vm1", operation: "migrate", subOperation: "begin")) {
            (Array(Self.domainXML.utf8), true)
        }
        #expect(outcome.exitStatus == 0)
        #expect(outcome.standardOutput.isEmpty)
        #expect(outcome.messages.map(\.severity) == [.warning])
        #expect(outcome.messages.first?.text.contains("/nonexistent/recontextd.yaml: no such file") == true)
    }

    @Test("an invalid configuration: warning naming file, line and key; XML unchanged; exit 0")
    func invalidConfiguration() throws {
        let config = try Self.configFile("images:\n  directory: relative/images\n  mode: rw\n")
        defer { try? FileManager.default.removeItem(atPath: (config as NSString).deletingLastPathComponent) }
        let hook = QemuHook(configurationPath: config, fileState: Self.files([]))
        let outcome = hook.run(.init(domain: "vm1", operation: "migrate", subOperation: "begin")) {
            (Array(Self.domainXML.utf8), true)
        }
        #expect(outcome.exitStatus == 0)
        #expect(outcome.standardOutput.isEmpty)
        let text = try #require(outcome.messages.first?.description)
        #expect(text.hasPrefix("recontextd hook: warning: vm1: migrate begin: configuration unusable"))
        #expect(text.contains("\(config):2: images.directory"))
        #expect(text.contains("\(config):3: images.mode"))
    }

    @Test("a refusal: exit 1, the reason on standard error, nothing printed")
    func refusal() throws {
        let config = try Self.configFile("images:\n  directory: \(Self.directory)\n")
        defer { try? FileManager.default.removeItem(atPath: (config as NSString).deletingLastPathComponent) }
        let hook = QemuHook(configurationPath: config, fileState: Self.files([]))
        let xml = Self.oneCDROM("<source file='\(Self.imageSATA)' startupPolicy='mandatory'/>")
        let outcome = hook.run(.init(domain: "vm1", operation: "migrate", subOperation: "begin")) {
            (Array(xml.utf8), true)
        }
        #expect(outcome.exitStatus == 1)
        #expect(outcome.standardOutput.isEmpty)
        #expect(
            outcome.messages.map(\.description) == [
                "recontextd hook: error: vm1: migrate begin: cdrom sda: \(Self.imageSATA): missing on this host, and its startupPolicy='mandatory' forbids starting without it"
            ])
    }

    @Test("standard input is read to the limit")
    func readLimit() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 100_000)
        let writeEnd = fds[1]
        let writer = Thread {
            payload.withUnsafeBytes { _ = write(writeEnd, $0.baseAddress, $0.count) }
            close(writeEnd)
        }
        writer.start()
        let limited = try QemuHook.readAll(fd: fds[0], limit: 70_000)
        close(fds[0])
        #expect(limited.bytes.count == 70_000 && !limited.complete)
    }
}

// MARK: - The sh front end and the binary

/// `systemd/libvirt-hook-qemu` run as libvirt runs it, with the built `recontextd`.
@Suite(
    "libvirt qemu hook: sh front end and binary", .realPart(missing: HookProgram.skipReason))
struct HookProgramTests {
    @Test("non-migrate operations: no output, exit 0, no Swift start-up")
    func frontEndOtherOperations() throws {
        let calls = [
            ("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"), ("release", "end"),
        ]
        var times: [Double] = []
        for (operation, subOperation) in calls {
            for _ in 0..<5 {
                // A binary that would fail loudly proves the front end never starts it.
                let result = try HookProgram.frontEnd(
                    ["vm1", operation, subOperation, "-"], input: HookTests.domainXML, binary: "/bin/false")
                #expect(result.status == 0 && result.standardOutput.isEmpty && result.standardError.isEmpty)
                times.append(result.milliseconds)
            }
        }
        times.sort()
        var baseline: [Double] = []
        for _ in 0..<times.count {
            baseline.append(try HookProgram.run("/bin/sh", ["-c", "exit 0"], input: HookTests.domainXML).milliseconds)
        }
        baseline.sort()
        print(
            "hook timing: sh front end, non-migrate call: median \(String(format: "%.2f", times[times.count / 2])) ms, max \(String(format: "%.2f", times.last!)) ms; an empty sh spawned the same way: median \(String(format: "%.2f", baseline[baseline.count / 2])) ms (\(times.count) runs each)"
        )
    }

    @Test("migrate begin end to end: a missing image's source is removed; timing")
    func frontEndMigrateBegin() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hook-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let images = root + "/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        let config = root + "/recontextd.yaml"
        try "images:\n  directory: \(images)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let xml = HookTests.domainXML.replacingOccurrences(of: HookTests.directory, with: images)
        let present = images + "/" + (HookTests.imageIDE as NSString).lastPathComponent
        try Data("iso".utf8).write(to: URL(fileURLWithPath: present))

        var times: [Double] = []
        for _ in 0..<7 {
            let result = try HookProgram.frontEnd(["vm1", "migrate", "begin", "-"], input: xml, config: config)
            #expect(result.status == 0)
            #expect(
                result.standardOutput
                    == HookTests.removingLines(xml, containing: ["<source file='\(images)/\(HookTests.uuid)-g3-"]))
            #expect(result.standardError.contains("cdrom sda"))
            times.append(result.milliseconds)
        }
        times.sort()
        print(
            "hook timing: sh front end + recontextd hook qemu, migrate begin with a rewrite: min \(String(format: "%.1f", times[0])) ms, median \(String(format: "%.1f", times[times.count / 2])) ms, max \(String(format: "%.1f", times.last!)) ms (\(times.count) runs, \(HookProgram.binary!))"
        )

        // Nothing to change: nothing printed.
        try Data("iso".utf8).write(
            to: URL(fileURLWithPath: images + "/" + (HookTests.imageSATA as NSString).lastPathComponent))
        let unchanged = try HookProgram.frontEnd(["vm1", "migrate", "begin", "-"], input: xml, config: config)
        #expect(unchanged.status == 0 && unchanged.standardOutput.isEmpty && unchanged.standardError.isEmpty)
        // restore begin too, and a domain named like an option.
        try FileManager.default.removeItem(atPath: present)
        let restore = try HookProgram.frontEnd(["--help", "restore", "begin", "-"], input: xml, config: config)
        #expect(restore.status == 0)
        #expect(restore.standardOutput == HookTests.removingLines(xml, containing: ["<source file='\(present)'/>"]))
        #expect(restore.standardError.contains("--help: restore begin: cdrom hdc"))
    }

    @Test("refusal and broken configuration through the front end")
    func frontEndFailures() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hook-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let config = root + "/recontextd.yaml"
        try "images:\n  directory: \(root)/images\n".write(toFile: config, atomically: true, encoding: .utf8)
        let mandatory = HookTests.oneCDROM("<source file='\(root)/images/x.iso' startupPolicy='mandatory'/>")
        let refused = try HookProgram.frontEnd(["vm1", "migrate", "begin", "-"], input: mandatory, config: config)
        #expect(refused.status == 1 && refused.standardOutput.isEmpty)
        #expect(
            refused.standardError.contains(
                "recontextd hook: error: vm1: migrate begin: cdrom sda: \(root)/images/x.iso: missing"))

        try "images: [unclosed\n".write(toFile: config, atomically: true, encoding: .utf8)
        let plain = HookTests.oneCDROM("<source file='\(root)/images/x.iso'/>")
        let broken = try HookProgram.frontEnd(["vm1", "migrate", "begin", "-"], input: plain, config: config)
        #expect(broken.status == 0 && broken.standardOutput.isEmpty)
        #expect(broken.standardError.contains("warning: vm1: migrate begin: configuration unusable"))

        let noBinary = try HookProgram.frontEnd(
            ["vm1", "migrate", "begin", "-"], input: plain, config: config, binary: root + "/no-such-recontextd")
        #expect(noBinary.status == 0 && noBinary.standardOutput.isEmpty)
        #expect(noBinary.standardError.contains("is not an executable"))
    }
}

/// Finds and runs the hook programs.
enum HookProgram {
    /// `systemd/libvirt-hook-qemu` of this checkout.
    static let frontEndPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("systemd/libvirt-hook-qemu").path

    /// The built `recontextd`: `RECONTEXTD_BINARY`, else next to this test bundle (any
    /// `--scratch-path`), else what ``RecontextdProcess/binary`` finds.
    static let binary: String? = {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["RECONTEXTD_BINARY"] { candidates.append(path) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("recontextd").path)
            directory = directory.deletingLastPathComponent()
        }
        candidates.append(RecontextdProcess.binary)
        return candidates.first { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: path)
        }
    }()

    /// Why the hook cannot be run here, or `nil` when its binary is built.
    static var skipReason: String? {
        binary == nil ? "recontextd binary not found: run `swift build` first, or set RECONTEXTD_BINARY" : nil
    }

    struct Result {
        var status: Int32
        var standardOutput: String
        var standardError: String
        var milliseconds: Double
    }

    /// `/bin/sh systemd/libvirt-hook-qemu ARGUMENTS < input`, as libvirt runs it.
    static func frontEnd(
        _ arguments: [String], input: String, config: String = "/nonexistent/recontextd.yaml", binary: String? = nil
    ) throws -> Result {
        // libvirt passes hooks only a few variables; these two are the front end's test overrides.
        try run(
            "/bin/sh", [frontEndPath] + arguments, input: input,
            environment: ["RECONTEXTD_BINARY": binary ?? Self.binary ?? "", "RECONTEXTD_CONFIG": config])
    }

    /// Runs `executable` with `input` on standard input, timing it from spawn to exit.
    static func run(_ executable: String, _ arguments: [String], input: String, environment: [String: String] = [:])
        throws -> Result
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"]
            .merging(environment) { $1 }
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let start = ContinuousClock.now
        try process.run()
        // Like libvirt: write the XML, ignoring a hook that closes its input early.
        signal(SIGPIPE, SIG_IGN)
        try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        return Result(
            status: process.terminationStatus, standardOutput: String(decoding: output, as: UTF8.self),
            standardError: String(decoding: errors, as: UTF8.self),
            milliseconds: Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
    }
}
