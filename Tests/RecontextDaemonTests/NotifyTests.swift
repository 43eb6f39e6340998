import Foundation
import RecontextDaemon
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// sd_notify: the messages, and the real `recontextd run` talking to a test's NOTIFY_SOCKET.
@Suite("sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING")
struct NotifyTests {
    @Test(
        "each daemon event has its sd_notify message",
        arguments: [
            (Daemon.ReadinessEvent.ready, "READY=1"),
            (.stopping, "STOPPING=1"),
            (.reloading, "RELOADING=1\nMONOTONIC_USEC=123456"),
            (.status("watching domains"), "STATUS=watching domains"),
            (.status("two\nlines"), "STATUS=two lines"),
        ])
    func messages(event: Daemon.ReadinessEvent, expected: String) {
        #expect(Notifier.message(for: event, monotonicMicroseconds: 123_456) == expected)
    }

    @Test("MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds")
    func monotonic() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let expected = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        let value = Notifier.monotonicMicroseconds()
        #expect(value >= expected && value - expected < 1_000_000)
    }

    @Test("without NOTIFY_SOCKET, sending does nothing and fails nothing")
    func noSocket() {
        let notifier = Notifier()
        guard !notifier.isEnabled else { return } // the test itself runs under a service manager
        #expect(notifier.send("READY=1") == 0)
        #expect(notifier.watchdogTimeout == nil || ProcessInfo.processInfo.environment["WATCHDOG_USEC"] != nil)
    }

    /// The real binary against a libvirt test-driver node (no libvirtd needed): the domain run of
    /// the first reconcile is recorded before READY=1 arrives.
    @Test(
        "recontextd run: READY=1 after the first reconcile, WATCHDOG=1 every WATCHDOG_USEC/2, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM"
    )
    func daemonLifecycle() async throws {
        let directory = NSTemporaryDirectory() + "recontextd-notify-test-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try TestDriverNode(directory: directory)
        let config = try node.writeConfiguration(directory: directory)
        let state = directory + "/state"
        let listener = try NotifySocketListener()
        defer { listener.close() }

        let watchdogMicroseconds = 1_000_000
        let daemon = try RecontextdProcess(
            ["run", "--config", config, "--state-dir", state],
            environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "\(watchdogMicroseconds)"])

        // READY=1 once connected, subscribed and the first reconcile is done: by then both
        // domains' runs are recorded.
        let ready = try #require(
            await listener.waitFor { $0.assignments["READY"] == "1" }, "no READY=1; log:\n\(daemon.logText)")
        #expect(FileManager.default.fileExists(atPath: state + "/status/\(TestDriverNode.managedUUID).json"))
        #expect(FileManager.default.fileExists(atPath: state + "/status/\(TestDriverNode.unmanagedUUID).json"))
        #expect(listener.messages.filter { $0.assignments["READY"] != nil }.count == 1)
        let statusLine = await listener.waitFor(after: ready.index) { $0.assignments["STATUS"] != nil }
        #expect(statusLine?.message.assignments["STATUS"] == "watching domains")

        // WATCHDOG=1 at half the timeout: every 500 ms.
        let windowStart = ContinuousClock.now
        try await Task.sleep(for: .seconds(3)) // a sleep on purpose: the window the pings are counted in
        let windowEnd = ContinuousClock.now
        let pings = listener.messages.filter {
            $0.text == "WATCHDOG=1" && $0.time >= windowStart && $0.time <= windowEnd
        }.map(\.time)
        let gaps = zip(pings.dropFirst(), pings).map { ($0 - $1) }.sorted()
        let expected = (windowEnd - windowStart) / .milliseconds(500)
        #expect(
            Double(pings.count) >= expected * 0.6 && Double(pings.count) <= expected * 1.4 + 1,
            "\(pings.count) pings in \(windowEnd - windowStart)")
        let median = try #require(gaps.isEmpty ? nil : gaps[gaps.count / 2])
        #expect(median > .milliseconds(400) && median < .milliseconds(750), "median gap \(median)")

        // SIGHUP: RELOADING=1 with MONOTONIC_USEC= (now), then READY=1.
        let beforeReload = listener.messages.count
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let sentAt = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        daemon.signal(SIGHUP)
        let reloading = try #require(
            await listener.waitFor(after: beforeReload) { $0.assignments["RELOADING"] == "1" }, "\(daemon.logText)")
        let monotonic = try #require(reloading.message.assignments["MONOTONIC_USEC"].flatMap(UInt64.init))
        #expect(monotonic >= sentAt && monotonic - sentAt < 5_000_000)
        let readyAgain = await listener.waitFor(after: reloading.index + 1) { $0.assignments["READY"] == "1" }
        #expect(readyAgain != nil, "no READY=1 after the reload")

        // SIGTERM: STOPPING=1, then a clean exit.
        let beforeStop = listener.messages.count
        let status = await daemon.stop(timeout: .seconds(60))
        #expect(status == 0, "\(daemon.logText)")
        // The datagram was sent before the exit; the listener's thread may read it a moment later.
        let stopping = await listener.waitFor(after: beforeStop) { $0.text == "STOPPING=1" }
        #expect(stopping != nil, "\(listener.messages.map(\.text))")
    }

    @Test("recontextd run without WATCHDOG_USEC sends no WATCHDOG=1")
    func noWatchdog() async throws {
        let directory = NSTemporaryDirectory() + "recontextd-notify-test-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try TestDriverNode(directory: directory)
        let config = try node.writeConfiguration(directory: directory)
        let listener = try NotifySocketListener()
        defer { listener.close() }
        let daemon = try RecontextdProcess(
            ["run", "--config", config, "--state-dir", directory + "/state"],
            environment: ["NOTIFY_SOCKET": listener.path])
        #expect(await listener.waitFor { $0.assignments["READY"] == "1" } != nil, "\(daemon.logText)")
        try await Task.sleep(for: .milliseconds(500)) // a sleep on purpose: no WATCHDOG=1 may come within it
        let status = await daemon.stop(timeout: .seconds(60))
        #expect(status == 0, "\(daemon.logText)")
        #expect(!listener.messages.contains { $0.text == "WATCHDOG=1" })
        #expect(listener.messages.contains { $0.text == "STOPPING=1" })
    }
}
