import Foundation
import Logging
import RecontextCore
import RecontextDaemon
import Virt

/// Benchmarks 4 (bookkeeping at scale) and 5 (footprint: memory with 1000 domains, leak check over
/// 10,000 pipeline runs), in one process on libvirt's test driver (`test:///default` is per
/// process).
///
/// The real adapters run: ``LibvirtHypervisor`` (libvirt's test driver), ``ISOImageStore``
/// (libisofs, atomic files), ``ContextPipeline`` under a ``DomainCoordinator``.
/// The test driver cannot change media ("not supported"), so every run ends in the insert phase
/// after resolve and build: everything but the device step is real.
enum ScaleBenchmark {
    static func domainXML(index: Int, uuid: String) -> String {
        """
        <domain type="test">
          <name>scale-\(index)</name>
          <uuid>\(uuid)</uuid>
          <memory>131072</memory>
          <vcpu>1</vcpu>
          <os><type arch="x86_64">hvm</type></os>
          <metadata>
            <recontext:context xmlns:recontext="urn:recontextd:context:1" format="nocloud">\
        <recontext:var name="role">web-\(index)</recontext:var>\
        <recontext:file path="etc/monitoring.conf" template="yes">endpoint={{host.monitoring_endpoint}} role={{vm.role}}</recontext:file>\
        </recontext:context>
          </metadata>
          <devices>
            <disk type="file" device="cdrom"><target dev="sda" bus="sata"/><readonly/></disk>
          </devices>
        </domain>
        """
    }

    static func uuid(_ index: Int) -> String {
        String(format: "5ca1e000-0000-4000-8000-%012x", index)
    }

    final class EventCounter: @unchecked Sendable {
        // @unchecked Sendable: the count is behind an NSLock.
        private let lock = NSLock()
        private var value = 0
        func add() {
            lock.lock()
            value += 1
            lock.unlock()
        }
        var count: Int {
            lock.lock()
            defer { lock.unlock() }
            return value
        }
    }

    static func run(domains: Int, leakRuns: Int, directory: String) async throws -> [String: Any] {
        var result: [String: Any] = ["domains": domains]
        var logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        let rssStart = procStatusKiB("VmRSS")
        result["rss_kib_start"] = rssStart

        let hypervisor = LibvirtHypervisor(uri: "test:///default")
        let connection = try hypervisor.connect()
        let stream = try connection.events()
        let counter = EventCounter()
        let receiver = Task {
            for await event in stream {
                if case .domain = event { counter.add() }
            }
        }

        // MARK: define and start
        let createMS = try timeMS {
            for index in 0..<domains {
                let domain = try connection.defineDomain(xml: domainXML(index: index, uuid: uuid(index)))
                try domain.start()
            }
        }
        // Every define gives DEFINED/ADDED and every start STARTED/BOOTED (plus RESUMED in 9.0).
        let waitStart = ContinuousClock.now
        var last = -1
        while ContinuousClock.now - waitStart < .seconds(10) {
            try await Task.sleep(for: .milliseconds(100))
            let now = counter.count
            if now == last && now >= 2 * domains { break }
            last = now
        }
        result["create_ms"] = createMS
        result["events_received"] = counter.count
        result["events_expected_at_least"] = 2 * domains
        note("defined and started \(domains) domains in \(Int(createMS)) ms; \(counter.count) events")

        let images = ISOImageStore(directory: directory + "/images", mode: 0o644)
        try images.prepare()
        let settings = PipelineSettings(
            host: HostFacts(
                name: "bench-host",
                variables: ["monitoring_endpoint": "http://monitor.example:9090", "ntp_server": "127.0.0.123"]),
            retry: RetryPolicy(attempts: 1, initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(1)))
        let pipeline = ContextPipeline(hypervisor: hypervisor, images: images, settings: settings, logger: logger)

        // MARK: desired state (resolve: snapshot + parse + render)
        var desired: [ContextPipeline.Desired] = []
        var identities: [DomainIdentity] = []
        let resolveMS = try await timeMSAsync {
            for index in 0..<domains {
                let snapshot = try await hypervisor.snapshot(of: uuid(index))
                guard let wanted = try pipeline.desired(for: snapshot) else {
                    throw BenchError("scale-\(index) not managed")
                }
                desired.append(wanted)
                identities.append(snapshot.identity)
            }
        }
        result["desired_state_ms_total"] = resolveMS
        result["desired_state_ms_per_domain"] = resolveMS / Double(domains)
        note("desired state of \(domains) domains: \(Int(resolveMS)) ms")

        // MARK: image builds (to files, atomic; the daemon flushes them after the insert)
        var buildSamples: [Double] = []
        for (index, wanted) in desired.enumerated() {
            let record = ContextRenderer.generationRecord(
                generation: 1, host: "bench-host", contentHash: wanted.context.contentHash, domain: identities[index])
            let name = ImageNaming.name(
                domain: identities[index], generation: 1, contentHash: wanted.context.contentHash)
            let ms = try await timeMSAsync { _ = try await images.write(wanted.context, record: record, name: name) }
            buildSamples.append(ms)
        }
        for image in try await images.storedImages() { try? await images.remove(path: image.path) }
        result["image_build_ms"] = Summary(buildSamples).json
        result["image_build_ms_total"] = buildSamples.reduce(0, +)
        note("\(domains) image builds: median \(String(format: "%.2f", Summary(buildSamples).median)) ms")

        // MARK: full pipeline through the DomainCoordinator (the insert step fails here)
        let outcomes = ResultCounter()
        let coordinator = DomainCoordinator(
            settings: .init(concurrency: 4), logger: logger,
            runner: { work in await pipeline.run(uuid: work.uuid, trigger: work.trigger) },
            onFinished: { finished in outcomes.add(finished.report) })
        async let coordinatorRun: Void = coordinator.run()
        let reconcileMS = try await timeMSAsync {
            let active = try await hypervisor.activeDomains()
            await coordinator.submit(all: active.map(\.uuid), trigger: .reconcile)
            await coordinator.waitUntilIdle()
        }
        result["reconcile_all_ms"] = reconcileMS
        result["reconcile_outcomes"] = outcomes.snapshot()
        note("reconcile of \(domains) domains through the coordinator: \(Int(reconcileMS)) ms, \(outcomes.snapshot())")

        try await Task.sleep(for: .seconds(1))
        result["rss_kib_idle_with_domains"] = procStatusKiB("VmRSS")
        result["hwm_kib_after_bookkeeping"] = procStatusKiB("VmHWM")

        // MARK: leak check: pipeline runs, RSS sampled
        var rssSamples: [[String: Any]] = []
        let rounds = max(1, leakRuns / domains)
        let cpuBefore = cpuTimeMS()
        let leakMS = try await timeMSAsync {
            for round in 0..<rounds {
                for index in 0..<domains { await coordinator.submit(uuid(index), trigger: .manual) }
                await coordinator.waitUntilIdle()
                rssSamples.append(["runs": (round + 1) * domains, "rss_kib": procStatusKiB("VmRSS")])
                if round == 0 || (round + 1) % 5 == 0 {
                    note("leak check: \((round + 1) * domains) runs, RSS \(procStatusKiB("VmRSS")) KiB")
                }
            }
            _ = try await images.storedImages()
        }
        result["leak_runs"] = rounds * domains
        result["leak_ms_total"] = leakMS
        result["leak_cpu_ms"] = cpuTimeMS() - cpuBefore
        result["leak_rss_samples"] = rssSamples
        result["leak_outcomes"] = outcomes.snapshot()
        let firstRSS = rssSamples.first!["rss_kib"] as! Int
        let lastRSS = rssSamples.last!["rss_kib"] as! Int
        result["rss_kib_after_first_1000_runs"] = firstRSS
        result["rss_kib_after_all_runs"] = lastRSS
        result["rss_growth_kib_first_to_last"] = lastRSS - firstRSS
        result["hwm_kib"] = procStatusKiB("VmHWM")
        result["events_received_total"] = counter.count
        receiver.cancel()
        await coordinator.shutdown(budget: .seconds(30))
        await coordinatorRun
        hypervisor.closeConnection()
        return result
    }

    final class ResultCounter: @unchecked Sendable {
        // @unchecked Sendable: the counts are behind an NSLock.
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func add(_ report: RunReport) {
            var key = report.result
            if case .failed(let phase, _, _) = report.outcome { key += "-\(phase)" }
            lock.lock()
            counts[key, default: 0] += 1
            lock.unlock()
        }
        func snapshot() -> [String: Int] {
            lock.lock()
            defer { lock.unlock() }
            return counts
        }
    }
}
