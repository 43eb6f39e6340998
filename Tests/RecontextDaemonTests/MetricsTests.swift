import AtomicFile
import Foundation
import Logging
import Prometheus
import RecontextConfiguration
import RecontextCore
import RecontextDaemon
import Synchronization
import TestSupport
import Testing
import Virt

#if canImport(Glibc)
    import Glibc
#endif

/// Metrics through swift-metrics with swift-prometheus: the text (parsed by Python's
/// prometheus_client), the atomic textfile, the loopback/unix responder.
@Suite(
    "metrics: Prometheus text, textfile, GET /metrics",
    .realPart(missing: PrometheusTextParser.skipReason))
struct MetricsTests {
    static func event(_ uuid: String, _ kind: DomainEventKind) -> ConnectionEvent {
        .domain(DomainEvent(domain: DomainReference(name: "vm-secret-name", uuid: uuid), kind: kind))
    }

    static func report(_ uuid: String, _ outcome: RunReport.Outcome, phases: [Phase: Duration] = [:]) -> RunReport {
        var timings = PhaseTimings()
        timings.phases = phases
        timings.total = phases.values.reduce(.zero, +)
        return RunReport(
            uuid: uuid, domain: DomainIdentity(name: "vm-secret-name", uuid: uuid), trigger: .started, runID: "r1",
            outcome: outcome, timings: timings)
    }

    static let applied = AppliedState(
        generation: 1, contentHash: "abc", host: "h", time: Date(), imagePath: "/i/x.iso", format: .noCloud)

    static func scratch() throws -> String {
        let directory = NSTemporaryDirectory() + "recontextd-metrics-test-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("counters, gauges and histograms parse with prometheus_client and hold what was recorded")
    func recordedValues() async throws {
        let exporter = MetricsExporter(configuration: .init(), logger: Logger(label: "test"))
        let metrics = exporter.recorder
        metrics.recordEvent(type: MetricsRecorder.eventType(Self.event("u1", .lifecycle(.started(.booted)))))
        metrics.recordEvent(type: MetricsRecorder.eventType(Self.event("u1", .lifecycle(.resumed(.migrated)))))
        metrics.recordEvent(type: MetricsRecorder.eventType(Self.event("u1", .lifecycle(.resumed(.migrated)))))
        metrics.recordEvent(
            type: MetricsRecorder.eventType(
                Self.event("u1", .metadataChange(.element, namespace: ContextMetadata.namespaceURI))))
        metrics.recordEvent(
            type: MetricsRecorder.eventType(
                Self.event("u1", .metadataChange(.element, namespace: AppliedMetadata.namespaceURI))))
        metrics.recordEvent(
            type: MetricsRecorder.eventType(Self.event("u1", .trayChange(deviceAlias: "sata0-0-0", .open))))
        metrics.recordEvent(type: MetricsRecorder.eventType(.closed(.endOfFile)))
        let start = ContinuousClock.now
        // Event at `start`, image in the live domain 35 ms later, run over 40 ms after the event.
        var appliedRun = Self.report(
            "u1", .applied(Self.applied),
            phases: [.resolve: .milliseconds(3), .build: .milliseconds(2), .insert: .milliseconds(30)])
        appliedRun.timings.insertedAt = start + .milliseconds(35)
        metrics.recordRun(appliedRun, eventTime: start, now: start + .milliseconds(40))
        metrics.recordRun(Self.report("u2", .unchanged(Self.applied), phases: [.resolve: .milliseconds(1)]))
        metrics.recordRun(Self.report("u3", .skipped(.notManaged)))
        metrics.recordRun(Self.report("u4", .failed(phase: .insert, message: "x", transient: false)))
        metrics.recordReconnect()
        metrics.recordReload()
        metrics.recordCoordinator(queueDepth: 3, activeRuns: 1)
        metrics.recordManagedDomains(3)

        let text = exporter.render()
        let samples = try await PrometheusTextParser.parse(text)
        #expect(samples.value("recontextd_events_total", ["type": "started_booted"]) == 1)
        #expect(samples.value("recontextd_events_total", ["type": "resumed_migrated"]) == 2)
        #expect(samples.value("recontextd_events_total", ["type": "metadata_context"]) == 1)
        #expect(samples.value("recontextd_events_total", ["type": "metadata_other"]) == 1)
        #expect(samples.value("recontextd_events_total", ["type": "tray_change"]) == 1)
        #expect(samples.value("recontextd_events_total", ["type": "connection_closed"]) == 1)
        for result in ["applied", "unchanged", "skipped", "failed"] {
            #expect(samples.value("recontextd_pipeline_runs_total", ["result": result]) == 1)
        }
        #expect(samples.value("recontextd_pipeline_phase_duration_seconds_count", ["phase": "insert"]) == 1)
        #expect(samples.value("recontextd_pipeline_phase_duration_seconds_count", ["phase": "resolve"]) == 2)
        #expect(
            samples.value("recontextd_pipeline_phase_duration_seconds_bucket", ["phase": "insert", "le": "0.025"]) == 0)
        #expect(
            samples.value("recontextd_pipeline_phase_duration_seconds_bucket", ["phase": "insert", "le": "0.05"]) == 1)
        #expect(
            abs((samples.value("recontextd_pipeline_phase_duration_seconds_sum", ["phase": "insert"]) ?? 0) - 0.03)
                < 1e-9)
        #expect(samples.value("recontextd_pipeline_run_duration_seconds_count") == 4)
        #expect(samples.value("recontextd_event_to_inserted_seconds_count") == 1)
        #expect(abs((samples.value("recontextd_event_to_inserted_seconds_sum") ?? 0) - 0.035) < 1e-9)
        #expect(samples.value("recontextd_event_to_applied_seconds_count") == 1)
        #expect(abs((samples.value("recontextd_event_to_applied_seconds_sum") ?? 0) - 0.04) < 1e-9)
        #expect(samples.value("recontextd_libvirt_reconnects_total") == 1)
        #expect(samples.value("recontextd_reloads_total") == 1)
        #expect(samples.value("recontextd_queue_depth") == 3)
        #expect(samples.value("recontextd_active_runs") == 1)
        // The coordinator counts managed domains (CoordinatorShutdownTests, DaemonServiceTests).
        #expect(samples.value("recontextd_managed_domains") == 3)
        #expect(samples.first { $0.name == "recontextd_pipeline_runs_total" }?.type == "counter")
        #expect(samples.first { $0.name.hasPrefix("recontextd_event_to_inserted_seconds") }?.type == "histogram")
        // No domain name or UUID is ever a label.
        #expect(!text.contains("vm-secret-name") && !text.contains("\"u1\""))
    }

    @Test(
        "every event kind maps to a fixed, bounded type",
        arguments: [
            (DomainEventKind.lifecycle(.started(.migrated)), "started_migrated"),
            (.lifecycle(.suspended(.paused)), "suspended_paused"),
            (.lifecycle(.stopped(.failed)), "stopped_failed"),
            (.lifecycle(.crashed(.panicked)), "lifecycle_other"),
            (.lifecycle(.undefined(.removed)), "undefined"),
            (.deviceAdded(deviceAlias: "x"), "device_added"),
            (.deviceRemoved(deviceAlias: "x"), "device_removed"),
            (.diskChange(oldSource: nil, newSource: nil, deviceAlias: "x", reason: 0), "disk_change"),
        ])
    func eventTypes(kind: DomainEventKind, expected: String) {
        #expect(MetricsRecorder.eventType(Self.event("u", kind)) == expected)
    }

    @Test("the textfile is written atomically: complete, mode 0644, no temporary file left; replaced in place")
    func textfile() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = MetricsTextFile(path: directory + "/recontextd.prom")
        try file.write("a 1\n")
        try file.write("# TYPE b counter\nb_total 2\n")
        #expect(try String(contentsOfFile: file.path, encoding: .utf8) == "# TYPE b counter\nb_total 2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["recontextd.prom"])
        var info = stat()
        #expect(stat(file.path, &info) == 0 && info.st_mode & 0o777 == 0o644)
        let temporary = AtomicFile.temporaryName(for: "recontextd.prom")
        #expect(!temporary.hasSuffix(".prom"), "node_exporter reads only *.prom")
        #expect(temporary.hasPrefix("."))
        #expect(throws: AtomicFileError.self) {
            try MetricsTextFile(path: directory + "/missing/x.prom").write("x")
        }
    }

    @Test("the exporter writes the textfile at start, after runs (debounced) and every interval, and at shutdown")
    func exporterWrites() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = DaemonConfiguration.Metrics()
        configuration.textfile = directory + "/recontextd.prom"
        configuration.interval = .seconds(3600)
        let exporter = MetricsExporter(
            configuration: configuration, logger: Logger(label: "test"), debounce: .milliseconds(50))
        let refreshed = RefreshCount()
        exporter.setRefresh { refreshed.add() }
        let task = Task { try await exporter.run() }
        defer { task.cancel() }
        let path = configuration.textfile!
        @Sendable func written(_ count: Int) -> Bool {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return text.contains("recontextd_pipeline_runs_total{result=\"applied\"} \(count)\n")
        }
        try await eventually("the textfile with no runs", every: .milliseconds(20)) { written(0) }
        exporter.recorder.recordRun(Self.report("u1", .applied(Self.applied)))
        exporter.recorder.recordRun(Self.report("u2", .applied(Self.applied)))
        try await eventually("the textfile with two applied runs", every: .milliseconds(20)) { written(2) }
        #expect(refreshed.count >= 2)
        let samples = try await PrometheusTextParser.parse(try String(contentsOfFile: path, encoding: .utf8))
        #expect(samples.value("recontextd_pipeline_runs_total", ["result": "applied"]) == 2)
        task.cancel()
        _ = try? await task.value
    }

    @Test("the interval alone rewrites the textfile")
    func exporterInterval() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = DaemonConfiguration.Metrics()
        configuration.textfile = directory + "/recontextd.prom"
        configuration.interval = .milliseconds(100)
        let exporter = MetricsExporter(
            configuration: configuration, logger: Logger(label: "test"), debounce: .milliseconds(10))
        let refreshed = RefreshCount()
        exporter.setRefresh { refreshed.add() }
        let task = Task { try await exporter.run() }
        try await eventually("five refreshes", every: .milliseconds(20)) { refreshed.count >= 5 }
        task.cancel()
        _ = try? await task.value
    }

    @Test("the listener as a scraper sees it: concurrent scrapes, keep-alive refused cleanly, bounded request head")
    func responderUnderScrapers() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let exporter = MetricsExporter(configuration: .init(), logger: Logger(label: "test"))
        exporter.recorder.recordReload()
        let socketPath = directory + "/metrics.sock"
        let responder = try MetricsHTTPResponder(address: .unix(path: socketPath)) { exporter.render() }
        responder.start()
        defer { responder.stop() }

        // Eight scrapers at once, five scrapes each: every answer complete and parseable.
        let answers = Collected<MetricsHTTPClient.Response>()
        runOnThreads(
            (0..<8).map { _ in
                {
                    for _ in 0..<5 {
                        if let answer = try? MetricsHTTPClient.request(unixPath: socketPath) { answers.append(answer) }
                    }
                }
            })
        #expect(answers.count == 40)
        for answer in answers.all {
            #expect(answer.status == 200 && answer.closedByServer)
            #expect(try await PrometheusTextParser.parse(answer.body).value("recontextd_reloads_total") == 1)
        }

        // An HTTP/1.1 client asking for keep-alive gets the whole answer, `Connection: close`, and
        // end of file (not a connection left open until its timeout).
        let keepAlive = try MetricsHTTPClient.request(
            unixPath: socketPath,
            raw: Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".utf8))
        #expect(keepAlive.status == 200 && keepAlive.closedByServer)
        #expect(keepAlive.head.contains("Connection: close"))
        #expect(keepAlive.body.contains("recontextd_reloads_total 1"))

        // A request head over 8 KiB is refused with 431; one cut short with 400; the listener goes on.
        let huge = "GET /metrics HTTP/1.0\r\nX-Filler: " + String(repeating: "a", count: 10_000) + "\r\n\r\n"
        #expect(try MetricsHTTPClient.request(unixPath: socketPath, raw: Array(huge.utf8)).status == 431)
        let cut = try MetricsHTTPClient.request(unixPath: socketPath, raw: Array("GET /metr".utf8), shutdownWrite: true)
        #expect(cut.status == 400)
        #expect(try MetricsHTTPClient.request(unixPath: socketPath).status == 200)
    }

    @Test("GET /metrics on a unix socket and on 127.0.0.1 and [::1]; 404 elsewhere, 405 for POST, HEAD without a body")
    func responder() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let exporter = MetricsExporter(configuration: .init(), logger: Logger(label: "test"))
        exporter.recorder.recordReconnect()
        let socketPath = directory + "/metrics.sock"
        try "stale".write(toFile: directory + "/not-a-socket", atomically: true, encoding: .utf8)
        #expect(throws: MetricsHTTPResponder.SetupError.self) {
            _ = try MetricsHTTPResponder(address: .unix(path: directory + "/not-a-socket")) { "" }
        }
        let unix = try MetricsHTTPResponder(address: .unix(path: socketPath)) { exporter.render() }
        unix.start()
        let response = try MetricsHTTPClient.request(unixPath: socketPath)
        #expect(response.status == 200)
        #expect(response.head.contains("text/plain; version=0.0.4"))
        #expect(try await PrometheusTextParser.parse(response.body).value("recontextd_libvirt_reconnects_total") == 1)
        #expect(try MetricsHTTPClient.request(unixPath: socketPath, path: "/").status == 404)
        #expect(try MetricsHTTPClient.request(unixPath: socketPath, method: "POST").status == 405)
        let head = try MetricsHTTPClient.request(unixPath: socketPath, method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty)
        unix.stop()
        #expect(!FileManager.default.fileExists(atPath: socketPath), "the socket file is removed at stop")

        for host in ["127.0.0.1", "::1"] {
            guard let tcp = try? MetricsHTTPResponder(address: .tcp(host: host, port: 0), body: { exporter.render() })
            else {
                #expect(host == "::1", "IPv6 may be off; IPv4 loopback must work")
                continue
            }
            tcp.start()
            let port = try #require(tcp.boundPort)
            let answer = try MetricsHTTPClient.request(host: host, port: port)
            #expect(answer.status == 200 && answer.body.contains("recontextd_libvirt_reconnects_total 1"))
            tcp.stop()
        }
    }

    @Test(
        "a non-loopback address is refused before any socket is bound",
        arguments: ["0.0.0.0", "10.0.0.5", "192.168.1.1", "::", "fe80::1"])
    func refusesNonLoopback(host: String) {
        #expect(throws: MetricsHTTPResponder.SetupError.self) {
            _ = try MetricsHTTPResponder(address: .tcp(host: host, port: 9466)) { "" }
        }
    }
}

/// Counts refresh calls (the exporter samples gauges before each write).
final class RefreshCount: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// `recontextd run` on a real libvirtd + QEMU host of its own: the textfile and GET /metrics
/// hold exactly what the test did (start, metadata change, libvirtd restart).
@Suite(
    "metrics: recontextd run on a real libvirtd",
    .realPart(missing: PrometheusTextParser.skipReason),
    .realPart(missing: LibvirtTestHost.skipReason))
struct MetricsLiveTests {
    @Test("counters match what the test did; nothing names a VM; the textfile and both listeners agree")
    func countersMatch() async throws {
        let directory = try TestDirectories.makeImageDirectory("metrics-live")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = LibvirtTestHost.Configuration.numbered(32)
        configuration.sharedDirectories = [TestDirectories.sharedImages]
        // Stopped at the end, off the cooperative pool; if the test throws first, dropping the
        // host closes its supervisor's input and it stops by itself.
        let host = try await LibvirtTestHost.start(configuration)

        let name = "metrics-vm"
        try host.defineDomain(
            LibvirtTestHost.minimalDomainXML(
                name: name, cdroms: [.init(bus: .sata, target: "sda", source: nil)],
                type: LibvirtTestHost.preferredDomainType))
        let context = #"<context format="nocloud"><var name="role">web</var></context>"#
        _ = try host.virsh([
            "metadata", name, "--uri", ContextMetadata.namespaceURI, "--key", "recontext", "--set", context, "--config",
        ])
        let uuid = try host.virsh(["domuuid", name]).trimmingCharacters(in: .whitespacesAndNewlines)

        let textfile = directory + "/node-exporter/recontextd.prom"
        try FileManager.default.createDirectory(atPath: directory + "/node-exporter", withIntermediateDirectories: true)
        let socketPath = directory + "/metrics.sock"
        let config = directory + "/recontextd.yaml"
        try """
        libvirt:
          uri: "\(host.uri)"
        images:
          directory: \(directory)/images
          mode: "0644"
        host:
          name: metrics-host
        pipeline:
          reconcile-interval: 0
        metrics:
          textfile: \(textfile)
          interval: 1h
          listen: unix:\(socketPath)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try RecontextdProcess(["run", "--config", config, "--state-dir", directory + "/state"])
        #expect(await daemon.waitForLog("connected to libvirt"), "\(daemon.logText)")

        func samples() async throws -> [PrometheusTextParser.Sample] {
            guard let text = try? String(contentsOfFile: textfile, encoding: .utf8) else { return [] }
            return try await PrometheusTextParser.parse(text)
        }
        func wait(_ what: String, _ condition: ([PrometheusTextParser.Sample]) -> Bool) async throws {
            if try await !eventually(every: .milliseconds(100), { try await condition(samples()) }) {
                let last = try await samples()
                Issue.record("\(what): not in the textfile within 60 s\n\(last)\nlog:\n\(daemon.logText)")
            }
        }
        let applied = ["result": "applied"]
        try await wait("the textfile at start") { $0.value("recontextd_pipeline_runs_total", applied) == 0 }

        // 1. Start the VM: one STARTED/BOOTED event, one applied run.
        _ = try host.virsh(["start", name])
        try await wait("the run after start") { $0.value("recontextd_pipeline_runs_total", applied) == 1 }
        // 2. Change its context metadata: one METADATA_CHANGE in our namespace, a second run.
        _ = try host.virsh(
            [
                "metadata", name, "--uri", ContextMetadata.namespaceURI, "--key", "recontext", "--set",
                context.replacingOccurrences(of: ">web<", with: ">db<"), "--live", "--config",
            ])
        try await wait("the run after the metadata change") { $0.value("recontextd_pipeline_runs_total", applied) == 2 }
        // 3. Restart libvirtd: one reconnect; its reconcile finds the VM unchanged.
        try host.restartLibvirtd()
        try await wait("the reconnect") {
            $0.value("recontextd_libvirt_reconnects_total") == 1
                && $0.value("recontextd_pipeline_runs_total", ["result": "unchanged"]) == 1
        }

        let final = try await samples()
        #expect(final.value("recontextd_events_total", ["type": "started_booted"]) == 1)
        #expect(final.value("recontextd_events_total", ["type": "metadata_context"]) == 1)
        #expect(final.value("recontextd_pipeline_runs_total", applied) == 2)
        #expect(final.value("recontextd_pipeline_runs_total", ["result": "failed"]) == 0)
        #expect(final.value("recontextd_pipeline_runs_total", ["result": "skipped"]) == 0)
        #expect(final.value("recontextd_event_to_inserted_seconds_count") == 2)
        #expect((final.value("recontextd_event_to_inserted_seconds_sum") ?? 0) > 0)
        #expect(final.value("recontextd_pipeline_phase_duration_seconds_count", ["phase": "insert"]) == 2)
        #expect(final.value("recontextd_pipeline_phase_duration_seconds_count", ["phase": "build"]) == 2)
        #expect(final.value("recontextd_pipeline_run_duration_seconds_count") == 3)
        #expect(final.value("recontextd_managed_domains") == 1)
        #expect(final.value("recontextd_queue_depth") == 0)
        #expect(final.value("recontextd_reloads_total") == 0)
        let text = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(!text.contains(name) && !text.contains(uuid), "no VM name or UUID in any label")
        let allowed = Set(["type", "result", "phase", "le", "verdict", "reason"])
        #expect(final.allSatisfy { Set($0.labels.keys).isSubset(of: allowed) })

        // GET /metrics on the unix socket says the same.
        let scraped = try await PrometheusTextParser.parse(try MetricsHTTPClient.request(unixPath: socketPath).body)
        #expect(scraped.value("recontextd_pipeline_runs_total", applied) == 2)
        #expect(scraped.value("recontextd_libvirt_reconnects_total") == 1)

        let status = await daemon.stop(timeout: .seconds(60))
        #expect(status == 0, "\(daemon.logText)")
        #expect(!FileManager.default.fileExists(atPath: socketPath))
        #expect(try await samples().value("recontextd_pipeline_runs_total", applied) == 2, "the last write at shutdown")
        #expect(!daemon.logText.contains("cannot write the metrics textfile"))
        _ = try? host.virsh(["destroy", name])
        await host.stop()
    }

    @Test("metrics.listen on 127.0.0.1 answers GET /metrics from recontextd run (test driver, no libvirtd)")
    func loopbackListener() async throws {
        let directory = NSTemporaryDirectory() + "recontextd-metrics-tcp-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try TestDriverNode(directory: directory)
        let port = MetricsHTTPClient.freePort()
        let config = try node.writeConfiguration(directory: directory, extra: "metrics:\n  listen: 127.0.0.1:\(port)")
        let daemon = try RecontextdProcess(["run", "--config", config, "--state-dir", directory + "/state"])
        #expect(await daemon.waitForLog("serving metrics"), "\(daemon.logText)")
        #expect(await daemon.waitForLog("run failed"), "\(daemon.logText)")
        var response = try MetricsHTTPClient.request(host: "127.0.0.1", port: port)
        // The run is recorded just after its log line.
        try await eventually(timeout: .seconds(5), every: .milliseconds(20)) {
            if response.body.contains("result=\"failed\"} 1") { return true }
            response = try MetricsHTTPClient.request(host: "127.0.0.1", port: port)
            return false
        }
        let samples = try await PrometheusTextParser.parse(response.body)
        #expect(samples.value("recontextd_pipeline_runs_total", ["result": "failed"]) == 1)
        #expect(samples.value("recontextd_pipeline_runs_total", ["result": "skipped"]) == 1)
        #expect(samples.value("recontextd_managed_domains") == 1)
        let status = await daemon.stop(timeout: .seconds(60))
        #expect(status == 0, "\(daemon.logText)")
    }
}
