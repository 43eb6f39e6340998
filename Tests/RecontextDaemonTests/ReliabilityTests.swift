import Foundation
import RecontextCore
import TestSupport
import Testing
import Virt

/// Issue 6, reliability: libvirtd restarts under load, recontextd killed mid-pipeline, a full image
/// directory, domains vanishing mid-run, duplicate events. Real libvirtd + QEMU (hosts 41-43, 46, 62),
/// the real `recontextd` binary.
@Suite(
    "reliability: faults survived, nothing lost (real libvirtd)",
    .serialized, .realPart(missing: LibvirtTestHost.skipReason))
struct ReliabilityTests {
    // MARK: - 1. libvirtd restarts while 20 VMs need work

    @Test(
        "libvirtd restarts while 20 VMs need work: every VM ends on its desired generation; missed events made good by the reconcile"
    )
    func libvirtdRestartWithTwentyVMs() async throws {
        let rig = try await ReliabilityRig(number: 41, label: "rel-restart")
        defer { rig.tearDown() }
        try rig.writeConfig(endpoint: "http://mon-1.example:9090")
        let names = try rig.addVMs("rs", count: 20) { _ in ReliabilityRig.metadata(role: "web") }
        let daemon = try rig.startDaemon()
        defer { _ = daemon }
        let initial = await rig.waitInSync(timeout: .seconds(90))
        #expect(initial.isEmpty, "not in sync before the restart: \(initial)\n\(daemon.logText)")
        let before = daemon.logText.count

        // The restart runs on its own thread; meanwhile every VM's metadata changes (retrying
        // while libvirtd is away), the host variable changes and the daemon gets SIGHUP.
        let started = ContinuousClock.now
        let restart = Task.detached { try rig.host.restartLibvirtd() }
        // A sleep on purpose: the changes below start while the restart is under way.
        try await Task.sleep(for: .milliseconds(30))
        try rig.writeConfig(endpoint: "http://mon-2.example:9090")
        daemon.signal(SIGHUP)
        var failedAttempts = 0
        var changedAt: [Date] = []
        var lastError: (any Error)?
        for name in names {
            let changed = await eventually(
                timeout: .seconds(60) - (ContinuousClock.now - started), every: .milliseconds(50)
            ) {
                do {
                    let connection = try Connection.open(rig.host.uri)
                    defer { connection.close() }
                    try rig.setMetadata(name, ReliabilityRig.metadata(role: "db"), connection: connection)
                    changedAt.append(Date())
                    return true
                } catch {
                    failedAttempts += 1
                    lastError = error
                    return false
                }
            }
            #expect(changed, "libvirtd did not come back: \(String(describing: lastError))")
            if !changed { return }
        }
        try await restart.value
        let changesDone = ContinuousClock.now - started
        #expect(await daemon.waitForLog("reconnected to libvirt"), "\(daemon.logText)")
        let lagging = await rig.waitInSync(timeout: .seconds(90))
        let converged = ContinuousClock.now - started
        #expect(lagging.isEmpty, "not in sync after the restart: \(lagging)\n\(daemon.logText)")

        // Every VM's attached image holds the new host variable and its new role.
        let connection = try Connection.open(rig.host.uri)
        defer { connection.close() }
        let inspection = try rig.inspect(connection: connection)
        for name in names {
            let source = inspection.live[name] ?? nil
            #expect(
                source.flatMap { inspection.monitoring[$0] } == "endpoint=http://mon-2.example:9090 role=db", "\(name)")
            #expect(inspection.persistent[name] == source, "\(name): the persistent definition names the live image")
        }
        #expect(inspection.unreadable.isEmpty, "\(inspection.unreadable)")

        let after = daemon.logText.dropFirst(before)
        let reconnectIndex = after.range(of: "reconnected to libvirt")?.lowerBound ?? after.startIndex
        let afterReconnect = after[reconnectIndex...]
        let byTrigger = ["reconcile", "reload", "metadata-changed", "retry"].map { trigger in
            (trigger, countLines(afterReconnect, containing: "context applied", "run.trigger=\(trigger)"))
        }
        let beforeReconnect = countLines(after[..<reconnectIndex], containing: "context applied")
        let failed = countLines(after, containing: "run failed")
        let madeGood = byTrigger.first { $0.0 == "reconcile" }!.1
        // Metadata changes made before the daemon had subscribed again: their events were missed.
        let reconnectLine =
            after.split(separator: "\n").first { $0.contains("reconnected to libvirt") }.map(String.init) ?? ""
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let reconnectedAt = reconnectLine.split(separator: " ").first.flatMap { formatter.date(from: String($0)) }
        let missedEvents = reconnectedAt.map { time in changedAt.filter { $0 < time }.count } ?? -1
        let reloadFailed = countLines(after[..<reconnectIndex], containing: "reconcile failed") > 0
        print(
            """
            [issue 6 / 1] libvirtd restart with 20 VMs needing work: metadata changes done \(changesDone) after the \
            restart began (\(failedAttempts) attempts refused while libvirtd was away); all 20 in sync after \(converged).
            [issue 6 / 1] applied before the reconnect: \(beforeReconnect); after it, by trigger: \
            \(byTrigger.map { "\($0.0)=\($0.1)" }.joined(separator: " ")); runs failed during the outage: \(failed).
            [issue 6 / 1] metadata changes made before the daemon had subscribed again (events missed): \(missedEvents) of 20; \
            the SIGHUP reload's reconcile failed during the outage: \(reloadFailed); \
            runs of the reconcile after the reconnect that applied a change (missed events + the new host variable, made good): \(madeGood)
            """)

        // Phase B, deterministic: the daemon is frozen (SIGSTOP) across the restart, so every
        // change lands on the new libvirtd before the daemon has subscribed there again.
        let frozenAt = daemon.logText.count
        daemon.signal(SIGSTOP)
        try rig.host.restartLibvirtd()
        let again = try Connection.open(rig.host.uri)
        defer { again.close() }
        for name in names { try rig.setMetadata(name, ReliabilityRig.metadata(role: "cache"), connection: again) }
        try rig.writeConfig(endpoint: "http://mon-3.example:9090")
        daemon.signal(SIGHUP)
        let thawed = ContinuousClock.now
        daemon.signal(SIGCONT)
        let reconnectedB = await daemon.waitForLog("reconnected to libvirt", count: 2, timeout: .seconds(20))
        #expect(reconnectedB, "phase B: no reconnect after SIGCONT\n\(daemon.logText)")
        if !reconnectedB {
            reportStuckOrDead(daemon, "[issue 6 / 1] phase B")
            _ = await daemon.stop(timeout: .seconds(2))
            return
        }
        let laggingB = await rig.waitInSync(timeout: .seconds(90))
        let convergedB = ContinuousClock.now - thawed
        #expect(laggingB.isEmpty, "phase B: \(laggingB)\n\(daemon.logText)")
        let inspectionB = try rig.inspect(connection: again)
        for name in names {
            let source = inspectionB.live[name] ?? nil
            #expect(
                source.flatMap { inspectionB.monitoring[$0] } == "endpoint=http://mon-3.example:9090 role=cache",
                "\(name)")
        }
        let logB = daemon.logText.dropFirst(frozenAt)
        let byTriggerB = ["reconcile", "reload", "metadata-changed", "retry"].map { trigger in
            (trigger, countLines(logB, containing: "context applied", "run.trigger=\(trigger)"))
        }
        let madeGoodB = byTriggerB.filter { $0.0 == "reconcile" || $0.0 == "reload" }.map(\.1).reduce(0, +)
        print(
            """
            [issue 6 / 1] phase B (daemon frozen across the restart): 20 metadata changes + a new host variable + SIGHUP \
            while it could not be subscribed: all 20 events missed; applied by trigger: \
            \(byTriggerB.map { "\($0.0)=\($0.1)" }.joined(separator: " ")); made good by the reconcile/reload after the \
            reconnect: \(madeGoodB) of 20; all in sync \(convergedB) after SIGCONT.
            """)
        // Every VM is made good at least once. A VM may be made good twice: the reconnect's
        // reconcile and the SIGHUP are both pending at SIGCONT, and a run the reconcile finished
        // before the reload took effect is redone with the new host variable (CI saw 24 once).
        #expect((20...40).contains(madeGoodB), "made good: \(madeGoodB)")
        #expect(await daemon.stop() == 0)
    }

    // MARK: - 1b. Phase B in a loop: frozen across a libvirtd restart, SIGHUP and SIGCONT, 8 times

    @Test(
        "frozen (SIGSTOP) across a libvirtd restart, then SIGHUP and SIGCONT in varying order, 8 times with 3 VMs: reconnects every time, never dies, ends in sync"
    )
    func frozenAcrossRestartsInALoop() async throws {
        let rig = try await ReliabilityRig(number: 62, label: "rel-frozen")
        defer { rig.tearDown() }
        try rig.writeConfig(endpoint: "http://mon-0.example:9090")
        let names = try rig.addVMs("fz", count: 3) { _ in ReliabilityRig.metadata(role: "r0") }
        let daemon = try rig.startDaemon()
        defer { _ = daemon }
        #expect(await rig.waitInSync(timeout: .seconds(90)).isEmpty, "\(daemon.logText)")

        let rounds = 8
        for round in 1...rounds {
            // As phase B of test 1: every change lands on the new libvirtd while the daemon is
            // frozen, so only the reload and the reconcile after the reconnect can make it good.
            daemon.signal(SIGSTOP)
            try rig.host.restartLibvirtd()
            let connection = try Connection.open(rig.host.uri)
            for name in names {
                try rig.setMetadata(name, ReliabilityRig.metadata(role: "r\(round)"), connection: connection)
            }
            connection.close()
            try rig.writeConfig(endpoint: "http://mon-\(round).example:9090")
            // Both orders: the reload first (its reconcile meets the dead connection), or the
            // thaw first (the reload races with the reconnect).
            if round % 2 == 1 {
                daemon.signal(SIGHUP)
                daemon.signal(SIGCONT)
            } else {
                daemon.signal(SIGCONT)
                // A sleep on purpose: the reload lands at a different point of the reconnect each round.
                try await Task.sleep(for: .milliseconds(10 * round))
                daemon.signal(SIGHUP)
            }
            let reconnected = await daemon.waitForLog("reconnected to libvirt", count: round, timeout: .seconds(60))
            #expect(reconnected, "round \(round): no reconnect after SIGCONT\n\(daemon.logText.suffix(6000))")
            guard reconnected else {
                reportStuckOrDead(daemon, "[issue 6 / 1b] round \(round)")
                _ = await daemon.stop(timeout: .seconds(2))
                return
            }
            #expect(await daemon.waitForLog("reloading configuration", count: round, timeout: .seconds(60)))
        }
        let lagging = await rig.waitInSync(timeout: .seconds(90))
        #expect(lagging.isEmpty, "\(lagging)\n\(daemon.logText.suffix(6000))")
        let connection = try Connection.open(rig.host.uri)
        defer { connection.close() }
        let inspection = try rig.inspect(connection: connection)
        for name in names {
            let source = inspection.live[name] ?? nil
            #expect(
                source.flatMap { inspection.monitoring[$0] }
                    == "endpoint=http://mon-\(rounds).example:9090 role=r\(rounds)",
                "\(name)")
        }
        let failedRuns = countLines(Substring(daemon.logText), containing: "run failed")
        print(
            """
            [issue 6 / 1b] \(rounds) rounds of SIGSTOP + libvirtd restart + metadata changes + SIGHUP/SIGCONT with 3 VMs: \
            reconnected every round, all in sync; runs failed on the way: \(failedRuns)
            """)
        #expect(await daemon.stop() == 0)
    }

    /// Prints why a daemon that should have reconnected did not: how it ended, or every thread's
    /// stack (gdb) when it is still running.
    private func reportStuckOrDead(_ daemon: RecontextdProcess, _ label: String) {
        if let ended = daemon.exitDescription {
            print("\(label): the daemon is gone (\(ended)); its log ends:\n\(daemon.logText.suffix(3000))")
            return
        }
        let stacks = try? ProcessRunner.runAllowingFailure(
            "/usr/bin/gdb", ["-p", String(daemon.pid), "-batch", "-ex", "thread apply all bt 25"])
        print("\(label): daemon stuck; its threads:\n\(stacks?.standardOutput.suffix(30000) ?? "(gdb failed)")")
    }

    // MARK: - 2. recontextd killed with SIGKILL inside the pipeline, 50 times

    @Test(
        "recontextd SIGKILLed at random points inside the pipeline, 50 times: converges, no half-written image, no orphans after collection"
    )
    func killedMidPipeline() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed =
            environment["RECONTEXTD_KILL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let rounds = environment["RECONTEXTD_KILL_ROUNDS"].flatMap { Int($0) } ?? 50
        print("[issue 6 / 2] kill seed \(seed) (replay: RECONTEXTD_KILL_SEED=\(seed)), \(rounds) rounds")
        var random = SplitMix64(seed: seed)
        let rig = try await ReliabilityRig(number: 42, label: "rel-kill")
        defer { rig.tearDown() }
        try rig.writeConfig(endpoint: "http://mon-k.example:9090")
        let names = try rig.addVMs("kill", count: 5) { _ in ReliabilityRig.metadata(role: "r0") }
        let connection = try Connection.open(rig.host.uri)
        defer { connection.close() }

        var counts = (temporaries: 0, orphans: 0, partlyDone: 0, notStarted: 0, allDone: 0, configBehind: 0)
        var role = "r0"
        var knownTemporaries: Set<String> = []
        var knownOrphans: Set<String> = []
        let started = ContinuousClock.now
        for round in 1...rounds {
            let daemon = try rig.startDaemon(logLevel: "notice")
            let lagging = await rig.waitInSync(timeout: .seconds(60))
            #expect(lagging.isEmpty, "round \(round): not in sync after the restart: \(lagging)\n\(daemon.logText)")
            if !lagging.isEmpty {
                _ = await daemon.stop()
                return
            }
            // Converged: every VM on `role`, its image complete, live and persistent agree.
            let settled = try rig.inspect(connection: connection)
            for name in names {
                let source = settled.live[name] ?? nil
                #expect(
                    source.flatMap { settled.monitoring[$0] }?.hasSuffix("role=\(role)") == true,
                    "round \(round): \(name)")
                if settled.persistent[name] != source { counts.configBehind += 1 }
                #expect(
                    settled.persistent[name] == source,
                    "round \(round): \(name): the persistent definition names the live image")
            }

            // Work for every VM, then SIGKILL after a random delay.
            role = "r\(round)"
            for name in names { try rig.setMetadata(name, ReliabilityRig.metadata(role: role), connection: connection) }
            let delay = Int.random(in: 0..<150, using: &random)
            // A sleep on purpose: the kill lands at a random point of the pipeline (what is tested).
            try await Task.sleep(for: .milliseconds(delay))
            daemon.signal(SIGKILL)
            _ = await daemon.stop(timeout: .seconds(5))

            // Right after the kill: nothing half-written under a final name or attached.
            let killed = try rig.inspect(connection: connection)
            #expect(killed.unreadable.isEmpty, "round \(round) (delay \(delay) ms): unreadable: \(killed.unreadable)")
            #expect(killed.withoutImage.isEmpty, "round \(round): VMs without a context image: \(killed.withoutImage)")
            #expect(killed.others.isEmpty, "round \(round): unexpected files \(killed.others)")
            #expect(killed.temporaries.allSatisfy { $0.hasPrefix(".") && ImageNaming.parse($0) == nil })
            // New since the last kill (collection runs only at the end).
            let newTemporaries = Set(killed.temporaries).subtracting(knownTemporaries)
            let newOrphans = killed.orphans.subtracting(knownOrphans)
            counts.temporaries += newTemporaries.isEmpty ? 0 : 1
            counts.orphans += newOrphans.isEmpty ? 0 : 1
            knownTemporaries.formUnion(killed.temporaries)
            knownOrphans.formUnion(killed.orphans)
            let done = names.filter { name in
                (killed.live[name] ?? nil).flatMap { killed.monitoring[$0] }?.hasSuffix("role=\(role)") == true
            }
            switch done.count {
            case 0: counts.notStarted += 1
            case names.count: counts.allDone += 1
            default: counts.partlyDone += 1
            }
        }
        let killPhase = ContinuousClock.now - started

        // A last daemon with a zero collection grace and a 1 s reconcile: converge, then collect.
        try rig.writeConfig(
            endpoint: "http://mon-k.example:9090", pipeline: ["reconcile-interval: 1", "collect-grace: 0"])
        let daemon = try rig.startDaemon()
        let lagging = await rig.waitInSync(timeout: .seconds(60))
        #expect(lagging.isEmpty, "\(lagging)\n\(daemon.logText)")
        var final = try rig.inspect(connection: connection)
        try await eventually(timeout: .seconds(20), every: .milliseconds(250)) {
            final = try rig.inspect(connection: connection)
            return final.orphans.isEmpty && final.temporaries.isEmpty
        }
        #expect(await daemon.stop() == 0)
        #expect(final.orphans.isEmpty, "orphans after collection: \(final.orphans)")
        #expect(final.temporaries.isEmpty, "temporaries after collection: \(final.temporaries)")
        #expect(final.unreadable.isEmpty, "\(final.unreadable)")
        #expect(final.withoutImage.isEmpty, "\(final.withoutImage)")
        for name in names {
            let source = final.live[name] ?? nil
            #expect(
                source.flatMap { final.monitoring[$0] } == "endpoint=http://mon-k.example:9090 role=\(role)", "\(name)")
            #expect(final.persistent[name] == source, "\(name)")
        }
        print(
            """
            [issue 6 / 2] \(rounds) SIGKILLs in \(killPhase) (seed \(seed)): right after the kill, no VM had started \
            the new content in \(counts.notStarted) rounds, some VMs had it in \(counts.partlyDone), all in \(counts.allDone); \
            the kill left a new temporary file (killed mid-write) in \(counts.temporaries) rounds, a new unattached final image \
            (killed between rename and swap, or a rebuilt generation) in \(counts.orphans); \
            unreadable images: 0; VMs without an image: 0. Persistent definition behind the live one after \
            convergence: \(counts.configBehind) VM-rounds.
            [issue 6 / 2] after the collection: \(final.finalImages.count) images for \(names.count) VMs, \
            \(final.temporaries.count) temporaries, \(final.orphans.count) orphans; removed: \
            \(countLines(Substring(daemon.logText), containing: "removed unreferenced image")).
            """)
    }

    // MARK: - 4. The image directory is full

    @Test(
        "image directory full (1 MiB tmpfs): clear error, old image stays attached, retried later, succeeds once space is back"
    )
    func imageDirectoryFull() async throws {
        let directory = try TestDirectories.makeImageDirectory("rel-full")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let mountPoint = directory + "/fs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        // Mounted before the host starts, so the host's private mount namespace has it too.
        try ProcessRunner.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", mountPoint])
        defer { _ = try? ProcessRunner.run("/usr/bin/umount", ["-l", mountPoint]) }
        let rig = try await ReliabilityRig(number: 43, label: "rel-full", directory: directory)
        defer { rig.tearDown(removeDirectory: false) }
        let images = mountPoint + "/images"
        try rig.writeConfig(endpoint: "http://mon-f.example:9090")
        try String(contentsOfFile: rig.config, encoding: .utf8)
            .replacingOccurrences(of: "directory: \(rig.images)", with: "directory: \(images)")
            .write(toFile: rig.config, atomically: true, encoding: .utf8)
        let name = try rig.addVMs("full", count: 1) { _ in ReliabilityRig.metadata(role: "before") }[0]
        let daemon = try rig.startDaemon()
        #expect(await rig.waitInSync().isEmpty, "\(daemon.logText)")
        let connection = try Connection.open(rig.host.uri)
        defer { connection.close() }
        let old = try #require(try connection.domain(named: name).cdroms().first?.sourceFile)
        #expect(old.hasPrefix(images + "/"))

        // Fill the file system.
        let filler = mountPoint + "/filler"
        _ = try ProcessRunner.runAllowingFailure("/usr/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4k"])
        let before = daemon.logText.count
        try rig.setMetadata(name, ReliabilityRig.metadata(role: "after"), connection: connection)
        #expect(await daemon.waitForLog("run failed", timeout: .seconds(20)), "\(daemon.logText)")
        let failure =
            String(daemon.logText.dropFirst(before)).split(separator: "\n").first { $0.contains("run failed") } ?? ""
        print("[issue 6 / 4] disk full: \(failure)")
        #expect(failure.contains("No space left on device"), "\(failure)")
        #expect(failure.contains("phase=build"))
        #expect(failure.contains("transient=true"))
        // Logged just after "run failed" (by another task): waited for, not assumed.
        #expect(await daemon.waitForLog("retrying later", timeout: .seconds(10)), "\(daemon.logText)")
        // The old image stays attached and readable; no temporary is left behind.
        #expect(try connection.domain(named: name).cdroms().first?.sourceFile == old)
        #expect(try ContextImageReader.read(old).text("etc/monitoring.conf").hasSuffix("role=before"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: images).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        let row = try #require(try rig.status()[name])
        let lastRun = row["last_run"] as? [String: Any]
        #expect(lastRun?["result"] as? String == "failed")
        #expect((lastRun?["error"] as? String)?.contains("No space left on device") == true)

        // Space comes back: the retry (5 s after the first failure) succeeds.
        let freed = ContinuousClock.now
        try FileManager.default.removeItem(atPath: filler)
        let new = try await LiveDaemonTests.waitForImage(
            connection, name, directory: images, other: old, timeout: .seconds(30))
        let waited = ContinuousClock.now - freed
        let newImage = try #require(new, "\(daemon.logText)")
        #expect(try ContextImageReader.read(newImage).text("etc/monitoring.conf").hasSuffix("role=after"))
        #expect(daemon.logText.dropFirst(before).contains("run.trigger=retry"), "\(daemon.logText)")
        print("[issue 6 / 4] space back: new image attached \(waited) later by a retry run")
        #expect(await LiveDaemonTests.waitUntilGone(old))
        #expect(await daemon.stop() == 0)
    }

    // MARK: - 3. Domains vanishing mid-pipeline; duplicate events

    @Test(
        "a domain destroyed or undefined mid-pipeline: a clear log line, no crash, no leftovers; a burst of events: coalesced"
    )
    func vanishingDomainsAndBursts() async throws {
        let rig = try await ReliabilityRig(number: 46, label: "rel-gone")
        defer { rig.tearDown() }
        // A 900 KiB file makes each build take a while; collection with no grace, every second.
        let big = String(repeating: "0123456789abcdef", count: 900 * 64)
        try rig.writeConfig(
            endpoint: "http://mon-g.example:9090",
            pipeline: ["reconcile-interval: 1", "collect-grace: 0", "concurrency: 8"])
        let file = "<file path=\"big.txt\">\(big)</file>"
        let names = try rig.addVMs("gone", count: 6) { _ in ReliabilityRig.metadata(role: "r0", extraFiles: file) }
        let burst = try rig.addVMs("burst", count: 1) { _ in ReliabilityRig.metadata(role: "b0") }[0]
        let daemon = try rig.startDaemon(logLevel: "debug")
        #expect(await rig.waitInSync(timeout: .seconds(60)).isEmpty, "\(daemon.logText)")
        let connection = try Connection.open(rig.host.uri)
        defer { connection.close() }
        var uuids: [String: String] = [:]
        for name in names { uuids[name] = try connection.domain(named: name).reference.uuid }

        // Change each, then destroy (even) or destroy and undefine (odd) a few ms later.
        let before = daemon.logText.count
        for (index, name) in names.enumerated() {
            try rig.setMetadata(name, ReliabilityRig.metadata(role: "r1", extraFiles: file), connection: connection)
            // A sleep on purpose: each VM goes away at a different point of its run (what is tested).
            try await Task.sleep(for: .milliseconds(2 + 7 * index))
            let domain = try connection.domain(named: name)
            try domain.destroy()
            if index % 2 == 1 { try domain.undefine() }
        }
        rig.names.removeAll { names.contains($0) && names.firstIndex(of: $0)! % 2 == 1 }
        // Every VM's run has ended: a line with its result each.
        await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            let lines = daemon.logText.dropFirst(before).split(separator: "\n").filter { $0.contains(" result=") }
            return names.allSatisfy { name in lines.contains { $0.contains(uuids[name]!) } }
        }
        let log = daemon.logText.dropFirst(before)
        var outcomes: [String: String] = [:]
        for name in names {
            // One line per finished run: its result, and the reason or the error.
            let lines = log.split(separator: "\n").filter { $0.contains(uuids[name]!) && $0.contains(" result=") }
            outcomes[name] = lines.map { line in
                let result =
                    line.range(of: " result=").map { String(line[$0.upperBound...].prefix { $0 != " " }) } ?? "?"
                let reason = line.range(of: " reason=").map { String(line[$0.upperBound...].prefix { $0 != " " }) }
                let error = line.range(of: " error=\"").map {
                    String(line[$0.upperBound...].prefix { $0 != "\"" }.prefix(90))
                }
                return result + (reason.map { "(\($0))" } ?? "") + (error.map { "(\($0))" } ?? "")
            }.joined(separator: "; ")
        }
        for (index, name) in names.enumerated() {
            print(
                "[issue 6 / 3] \(index % 2 == 0 ? "destroyed" : "destroyed+undefined") \(2 + 7 * index) ms after the change: \(outcomes[name]!)"
            )
            #expect(!outcomes[name]!.isEmpty, "\(name): no log line for its run")
        }
        #expect(!daemon.logText.contains("Fatal error"))
        // No leftovers: the images of undefined domains are collected; a destroyed persistent
        // domain keeps the one its definition names.
        var remaining: [String] = []
        await eventually(timeout: .seconds(10), every: .milliseconds(300)) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: rig.images)) ?? []
            remaining = names.enumerated().flatMap { index, name -> [String] in
                let mine = files.filter { $0.contains(uuids[name]!) }
                if index % 2 == 1 { return mine }
                let kept = try? connection.domain(named: name).cdroms(inactive: true).first?.sourceFile
                return mine.filter { rig.images + "/" + $0 != kept }
            }
            return remaining.isEmpty
        }
        #expect(remaining.isEmpty, "leftovers: \(remaining)\n\(daemon.logText)")

        // A burst: ten metadata changes to one VM in a row.
        let burstUUID = try connection.domain(named: burst).reference.uuid
        let burstStart = daemon.logText.count
        for step in 1...10 {
            try rig.setMetadata(burst, ReliabilityRig.metadata(role: "b\(step)"), connection: connection)
        }
        #expect(await rig.waitInSync([burst]).isEmpty)
        // A sleep on purpose: the window in which a follow-up run of the burst is still counted.
        try await Task.sleep(for: .milliseconds(500))
        let burstLog = daemon.logText.dropFirst(burstStart)
        let applied = countLines(burstLog, containing: "context applied", burstUUID)
        let runs = countLines(burstLog, containing: "run.id=", burstUUID, "duration.total_ms")
        let source = try #require(try connection.domain(named: burst).cdroms().first?.sourceFile)
        #expect(try ContextImageReader.read(source).text("etc/monitoring.conf").hasSuffix("role=b10"))
        print(
            "[issue 6 / 3] burst: 10 metadata changes to one VM (METADATA_CHANGE events) -> \(runs) runs, \(applied) of them applied (coalesced)"
        )
        // Coalesced: while a run is going, further events only mark "run once more" (the 1 s
        // periodic reconcile of this rig may add an unchanged run).
        #expect(runs < 10, "\(burstLog)")
        #expect(applied <= 3, "\(burstLog)")
        #expect(await daemon.stop() == 0)
    }
}
