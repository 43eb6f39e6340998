import Foundation
import Logging
import RecontextCore
import RecontextDaemon
import Synchronization
import TestSupport
import Testing
import Virt

/// Native journal entries: the field mapping, and the real binary logging to a real journald.
@Suite("journal: native entries with fields")
struct JournalTests {
    // MARK: - Fields

    @Test(
        "metadata keys become journal field names",
        arguments: [
            ("domain.name", "DOMAIN_NAME"), ("domain.uuid", "DOMAIN_UUID"), ("run.id", "RUN_ID"),
            ("run.trigger", "TRIGGER"),
            ("generation", "GENERATION"), ("result", "RESULT"), ("phase", "PHASE"), ("error", "ERROR"),
            ("hypervisor.error_code", "LIBVIRT_ERROR_CODE"), ("duration.total_ms", "DURATION_USEC"),
            ("duration.insert_ms", "DURATION_INSERT_USEC"), ("duration.resolve_ms", "DURATION_RESOLVE_USEC"),
            ("libvirt.uri", "LIBVIRT_URI"), ("content_hash", "CONTENT_HASH"), ("warning.index", "WARNING_INDEX"),
            ("sl-service", "SL_SERVICE"), ("message", "RECONTEXTD_MESSAGE"), ("priority", "RECONTEXTD_PRIORITY"),
            ("_hidden", "RECONTEXTD__HIDDEN"), ("9lives", "RECONTEXTD_9LIVES"),
            ("Ünïcode key", "RECONTEXTD___N__CODE_KEY"),
        ])
    func fieldNames(key: String, expected: String) {
        let name = JournalEntry.fieldName(forMetadataKey: key)
        #expect(name == expected)
        #expect(name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 })
        #expect(name.utf8.count <= 64)
    }

    @Test("an entry carries MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_* and every metadata field; durations in µs")
    func entry() {
        let entry = JournalEntry(
            level: .notice, message: "context applied",
            metadata: [
                "domain.uuid": "u-1", "duration.total_ms": "42.56", "duration.build_ms": "2.35", "generation": "3",
                "note": "two words",
            ],
            identifier: "recontextd", file: "RecontextCore/ContextPipeline.swift", function: "log(_:)", line: 412)
        #expect(
            entry["MESSAGE"]
                == "context applied domain.uuid=u-1 duration.build_ms=2.35 duration.total_ms=42.56 generation=3 note=\"two words\""
        )
        #expect(entry["PRIORITY"] == "5")
        #expect(entry["SYSLOG_IDENTIFIER"] == "recontextd")
        #expect(entry["CODE_FILE"] == "RecontextCore/ContextPipeline.swift")
        #expect(entry["CODE_LINE"] == "412")
        #expect(entry["CODE_FUNC"] == "log(_:)")
        #expect(entry["DOMAIN_UUID"] == "u-1")
        #expect(entry["DURATION_USEC"] == "42560")
        #expect(entry["DURATION_BUILD_USEC"] == "2350")
        #expect(entry["GENERATION"] == "3")
        #expect(entry["NOTE"] == "two words")
    }

    @Test("the handler sends through its sink; a failed send falls back to standard error")
    func handlerSink() {
        final class Sent: Sendable {
            let entries = Mutex<[JournalEntry]>([])
        }
        let sent = Sent()
        var logger = Logger(label: "test") { label in
            JournalLogHandler(label: label, level: .info) { entry in
                sent.entries.withLock { $0.append(entry) }
                return 0
            }
        }
        logger[metadataKey: "domain.uuid"] = "abc"
        logger.debug("not logged")
        logger.error("run failed", metadata: ["phase": "insert", "hypervisor.error_code": "3"])
        let entries = sent.entries.withLock { $0 }
        #expect(entries.count == 1)
        #expect(entries.first?["PRIORITY"] == "3")
        #expect(entries.first?["PHASE"] == "insert")
        #expect(entries.first?["LIBVIRT_ERROR_CODE"] == "3")
        #expect(entries.first?["DOMAIN_UUID"] == "abc")
        #expect(entries.first?["CODE_FILE"]?.hasSuffix("JournalTests.swift") == true)
    }

    @Test("log.target auto is the journal only when stderr is the journal stream; journal needs journald")
    func destinations() {
        #expect(JournalLogHandler.destination(for: .auto, stderrIsJournal: true, journalAvailable: true) == .journal)
        #expect(
            JournalLogHandler.destination(for: .auto, stderrIsJournal: false, journalAvailable: true) == .standardError)
        #expect(
            JournalLogHandler.destination(for: .journal, stderrIsJournal: false, journalAvailable: true) == .journal)
        #expect(
            JournalLogHandler.destination(for: .journal, stderrIsJournal: false, journalAvailable: false)
                == .standardError)
        #expect(
            JournalLogHandler.destination(for: .stderr, stderrIsJournal: true, journalAvailable: true) == .standardError
        )
    }

    @Test("without journald, Journal.send returns at once (libsystemd drops the entry) and isAvailable says so")
    func noJournald() {
        guard !FileManager.default.fileExists(atPath: Journal.socketPath) else { return }
        #expect(!Journal.isAvailable)
        #expect(Journal.send(JournalEntry(fields: [.init("MESSAGE", "x")])) == 0)
    }
}

/// The real binary logging to a real systemd-journald that the test starts in private
/// namespaces (``JournaldInstance``); `journalctl -o json DOMAIN_UUID=…` reads it back.
@Suite(
    "journal: recontextd run logging to a real journald",
    .realPart(missing: JournaldInstance.skipReason))
struct JournaldLiveTests {
    static let fields = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "DOMAIN_NAME", "DOMAIN_UUID",
        "RUN_ID", "TRIGGER", "RESULT", "DURATION_USEC", "DURATION_RESOLVE_USEC",
    ]

    static func scratch(_ label: String) throws -> String {
        let directory = NSTemporaryDirectory() + "recontextd-\(label)-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Started as systemd starts services (stderr a journal stream named by JOURNAL_STREAM), with
    /// `log.target: auto`: a failed run on the test driver carries PHASE, ERROR and libvirt's code.
    @Test("under a journal stream (log.target auto): a failed run with PHASE, LIBVIRT_ERROR_CODE and every field")
    func failedRunUnderJournalStream() async throws {
        let directory = try Self.scratch("journal-auto")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journald = try await JournaldInstance.start()
        defer { journald.stop() }
        let node = try TestDriverNode(directory: directory)
        let config = try node.writeConfiguration(directory: directory, extra: "log:\n  target: auto")
        let daemon = try journald.start(
            [RecontextdProcess.binary, "run", "--config", config, "--state-dir", directory + "/state"],
            streamIdentifier: "recontextd-stream")

        let failed = try await journald.waitForEntries(["DOMAIN_UUID=\(TestDriverNode.managedUUID)", "RESULT=failed"])
        let stopped = await daemon.stop(timeout: .seconds(60))
        let everything = (try? await journald.read([])) ?? []
        let entry = try #require(failed.first, "no entry; program output:\n\(daemon.output)\njournal:\n\(everything)")
        #expect(stopped == 0)
        for field in Self.fields + [
            "PHASE", "ERROR", "LIBVIRT_ERROR_CODE", "DURATION_BUILD_USEC", "DURATION_INSERT_USEC",
        ] {
            #expect(entry[field] != nil, "\(field) missing in \(entry)")
        }
        #expect(entry["SYSLOG_IDENTIFIER"] == "recontextd", "native entries, not the stream's \"recontextd-stream\"")
        #expect(entry["PRIORITY"] == "3")
        #expect(entry["DOMAIN_NAME"] == TestDriverNode.managedName)
        #expect(entry["TRIGGER"] == "reconcile")
        #expect(entry["PHASE"] == "insert")
        #expect(entry["LIBVIRT_ERROR_CODE"] == "3")
        #expect(entry["ERROR"]?.contains("not supported") == true)
        #expect(entry["CODE_FILE"]?.contains("PipelineRun") == true)
        #expect(Int(entry["DURATION_USEC"] ?? "") ?? -1 >= 0)
        #expect(entry["MESSAGE"]?.hasPrefix("run failed") == true)
        // The same run id on every entry of the run; the unmanaged domain is its own history.
        let runID = try #require(entry["RUN_ID"])
        #expect(
            try await journald.read(["RUN_ID=\(runID)"]).allSatisfy { $0["DOMAIN_UUID"] == TestDriverNode.managedUUID })
        let skipped = try await journald.read(["DOMAIN_UUID=\(TestDriverNode.unmanagedUUID)"])
        #expect(skipped.first?["RESULT"] == "skipped")
        // Daemon-level entries are native too, and nothing went to the stream.
        #expect(try await !journald.read(["SYSLOG_IDENTIFIER=recontextd", "LIBVIRT_URI=\(node.uri)"]).isEmpty)
        #expect(try await journald.read(["SYSLOG_IDENTIFIER=recontextd-stream"]).isEmpty)
    }

    /// A real libvirtd + QEMU host of its own: an applied run has GENERATION and the phase
    /// durations, and `journalctl DOMAIN_UUID=…` lists the VM's history in order.
    @Test(
        "log.target journal: applied runs with GENERATION, RESULT and durations, found by DOMAIN_UUID",
        .realPart(missing: LibvirtTestHost.skipReason))
    func appliedRunsOnRealLibvirt() async throws {
        let directory = try TestDirectories.makeImageDirectory("journal-live")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = LibvirtTestHost.Configuration.numbered(31)
        configuration.sharedDirectories = [TestDirectories.sharedImages]
        // Stopped at the end, off the cooperative pool; if the test throws first, dropping the
        // host closes its supervisor's input and it stops by itself.
        let host = try await LibvirtTestHost.start(configuration)
        let journald = try await JournaldInstance.start()
        defer { journald.stop() }

        let name = "journal-vm"
        try host.defineDomain(
            LibvirtTestHost.minimalDomainXML(
                name: name, cdroms: [.init(bus: .sata, target: "sda", source: nil)],
                type: LibvirtTestHost.preferredDomainType))
        let context = #"<context format="nocloud"><var name="role">web</var></context>"#
        _ = try host.virsh([
            "metadata", name, "--uri", ContextMetadata.namespaceURI, "--key", "recontext", "--set", context, "--config",
        ])
        let uuid = try host.virsh(["domuuid", name]).trimmingCharacters(in: .whitespacesAndNewlines)
        let config = directory + "/recontextd.yaml"
        try """
        libvirt:
          uri: "\(host.uri)"
        images:
          directory: \(directory)/images
          mode: "0644"
        host:
          name: journal-host
        pipeline:
          reconcile-interval: 0
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try journald.start(
            [
                RecontextdProcess.binary, "run", "--config", config, "--state-dir", directory + "/state",
                "--log-target", "journal",
            ])
        try await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            try await journald.read(["SYSLOG_IDENTIFIER=recontextd"]).contains {
                $0["MESSAGE"]?.hasPrefix("connected to libvirt") == true
            }
        }

        _ = try host.virsh(["start", name])
        let first = try await journald.waitForEntries(["DOMAIN_UUID=\(uuid)", "RESULT=applied"])
        _ = try host.virsh(
            [
                "metadata", name, "--uri", ContextMetadata.namespaceURI, "--key", "recontext", "--set",
                context.replacingOccurrences(of: ">web<", with: ">db<"), "--live", "--config",
            ])
        let applied = try await journald.waitForEntries(["DOMAIN_UUID=\(uuid)", "RESULT=applied"], count: 2)
        #expect(await daemon.stop(timeout: .seconds(60)) == 0, "\(daemon.output)")
        _ = try? host.virsh(["destroy", name])

        #expect(first.count >= 1, "output:\n\(daemon.output)")
        #expect(applied.count == 2)
        let entry = try #require(applied.first)
        for field in Self.fields + [
            "GENERATION", "DURATION_BUILD_USEC", "DURATION_INSERT_USEC", "CONTENT_HASH", "IMAGE",
        ] {
            #expect(entry[field] != nil, "\(field) missing in \(entry)")
            #expect(entry["DURATION_EJECT_USEC"] == nil, "a media change has no eject phase")
        }
        #expect(entry["PRIORITY"] == "5")
        #expect(entry["DOMAIN_NAME"] == name)
        #expect(entry["TRIGGER"] == "started")
        #expect(applied.map { $0["GENERATION"] } == ["1", "2"])
        #expect(applied.last?["TRIGGER"] == "metadata-changed")
        #expect(Int(entry["DURATION_USEC"] ?? "") ?? 0 > 0)
        // journalctl's own filter on our field finds the VM's whole history (start, change).
        let history = try await journald.read(["DOMAIN_UUID=\(uuid)"])
        #expect(history.compactMap { $0["RESULT"] }.filter { $0 == "applied" }.count == 2)
        #expect(history.allSatisfy { $0["DOMAIN_UUID"] == uuid })
        await host.stop()
    }
}
