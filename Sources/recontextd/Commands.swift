import ArgumentParser
import FoundationEssentials
import Logging
import RecontextConfiguration
import RecontextCore
import RecontextDaemon
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// `recontextd run`.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the daemon (what the systemd unit starts).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        unblockSignals()
        let configuration = try global.loadConfiguration()
        let logger = global.bootstrapLogging(configuration)
        let notifier = Notifier()
        let exporter = MetricsExporter(configuration: configuration.metrics, logger: logger)
        let daemon: Daemon
        do {
            daemon = try await Daemon.libvirt(
                options: global.daemonOptions, configuration: configuration, logger: logger,
                readiness: { notifier($0) }, metrics: exporter.recorder)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(ConfigurationErrors.exitCode)
        }
        let coordinator = daemon.context.coordinator
        exporter.setRefresh {
            let (depth, active) = await (coordinator.queueDepth, coordinator.activeRuns)
            exporter.recorder.recordCoordinator(queueDepth: depth, activeRuns: active)
        }
        let watchdog = notifier.watchdogInterval.map { interval in
            NotifierWatchdog(notifier: notifier, interval: interval) { _ = await coordinator.isIdle }
        }
        let group = daemon.serviceGroup(
            reloads: await UnixSignalsSequence(trapping: .sighup), watchdog: watchdog,
            exporter: exporter.isEnabled ? exporter : nil, gracefulShutdownSignals: [.sigterm, .sigint])
        try await group.run()
    }
}

/// `recontextd check-config`.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration file; list every problem with file, line and key (exit 78 when invalid).")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let configuration = try global.loadConfiguration()
        print("\(global.configurationPath): ok")
        print("  libvirt.uri       \(configuration.libvirt.uri)")
        print("  images.directory  \(configuration.images.directory)")
        print("  host.name         \(configuration.host.name)")
        print("  host.variables    \(configuration.host.variables.keys.sorted().joined(separator: ", "))")
        print(
            "  context           \(configuration.context.defaultFormat), \(configuration.context.managed.rawValue), \(configuration.context.device.mode.rawValue)"
        )
        print("  log               \(configuration.logLevel), \(configuration.logTarget.rawValue)")
        let metrics = configuration.metrics
        print("  metrics.textfile  \(metrics.textfile ?? "off")")
        print("  metrics.listen    \(metrics.listen?.description ?? "off")")
        if metrics.listen?.needsInternetSockets == true {
            print(
                "note: metrics.listen on TCP needs the systemd unit's metrics-tcp drop-in (README: Running it as a service)"
            )
        }
    }
}

/// `recontextd apply DOMAIN`.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Run the pipeline for one domain now (name or UUID).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The domain's name or UUID.") var domain: String

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let logger = global.bootstrapLogging(configuration)
        let report: RunReport
        do {
            report = try await OneShot(options: global.daemonOptions, configuration: configuration, logger: logger)
                .apply(domain)
        } catch {
            printError("recontextd apply: \(error)")
            throw ExitCode.failure
        }
        print(describe(report))
        if case .failed = report.outcome { throw ExitCode.failure }
    }
}

/// `recontextd render DOMAIN --output FILE`.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render", abstract: "Write the image that would be attached now to a file; change nothing.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The domain's name or UUID.") var domain: String
    @Option(name: .shortAndLong, help: "Where to write the image.") var output: String

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let logger = global.bootstrapLogging(configuration)
        do {
            let (context, generation) = try await OneShot(
                options: global.daemonOptions, configuration: configuration, logger: logger
            ).render(domain, output: output)
            print(
                "\(output): \(context.format) image, volume id '\(context.volumeID)', generation \(generation), content \(context.contentHash.prefix(12))"
            )
            for file in context.files {
                print("  \(file.path) (\(file.contents.count) bytes, mode \(String(file.mode, radix: 8)))")
            }
        } catch {
            printError("recontextd render: \(error)")
            throw ExitCode.failure
        }
    }
}

/// `recontextd status [--json]`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Desired against applied context of every managed domain on this host.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let logger = global.bootstrapLogging(configuration)
        let statuses: [DomainStatus]
        do {
            statuses = try await OneShot(options: global.daemonOptions, configuration: configuration, logger: logger)
                .status()
        } catch {
            printError("recontextd status: \(error)")
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(statuses), as: UTF8.self))
            return
        }
        let header = ["DOMAIN", "STATE", "SYNC", "DESIRED", "APPLIED", "HOST", "GUEST", "LAST RUN", "TOTAL"]
        var rows = [header]
        for status in statuses {
            let last = status.lastRun.map { "\($0.result) (\($0.trigger))" } ?? "-"
            let total =
                status.lastRun?.timingsMilliseconds["total"].map { DecimalText.fixed($0, decimals: 1) + " ms" } ?? "-"
            rows.append([
                status.name, status.state, status.problem != nil ? "error" : (status.inSync ? "yes" : "no"),
                status.desiredHash.map { String($0.prefix(12)) } ?? "-",
                status.appliedGeneration.map { "g\($0) \(status.appliedHash?.prefix(12) ?? "")" } ?? "-",
                status.appliedHost ?? "-", status.guestSummary, last, total,
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(
                row.enumerated().map { $1 + String(repeating: " ", count: max(0, widths[$0] - $1.count)) }.joined(
                    separator: "  "))
        }
        for status in statuses where status.problem != nil { print("\(status.name): \(status.problem!)") }
        for status in statuses {
            guard let channel = status.guestChannel else { continue }
            var line = "\(status.name): channel \(channel.channel)"
            if let detail = channel.channelDetail { line += " (\(detail))" }
            if let version = channel.companionVersion { line += ", companion \(version)" }
            if let ack = channel.lastAck {
                line += ", last ack g\(ack.generation) \(ack.result) \(ack.verdict)"
                if let latency = ack.latencyMilliseconds { line += " in \(DecimalText.fixed(latency, decimals: 0)) ms" }
                if !ack.failedHooks.isEmpty { line += ", failed hooks: \(ack.failedHooks.joined(separator: ","))" }
            }
            let dropped = channel.dropped.values.reduce(0, +)
            if dropped > 0 { line += ", \(dropped) lines dropped (last: \(channel.lastDrop ?? "-"))" }
            print(line)
        }
    }
}

/// A one-line summary of a run for the terminal.
func describe(_ report: RunReport) -> String {
    let name = report.domain?.name ?? report.uuid
    let timings = Phase.allCases.compactMap { phase in
        report.timings.phases[phase].map { "\(phase) \(DecimalText.fixed($0.milliseconds, decimals: 1)) ms" }
    }.joined(separator: ", ")
    let total = DecimalText.fixed(report.timings.total.milliseconds, decimals: 1)
    var line: String
    switch report.outcome {
    case .applied(let applied): line = "\(name): applied generation \(applied.generation) (\(applied.imagePath))"
    case .unchanged(let applied): line = "\(name): unchanged at generation \(applied.generation)"
    case .skipped(let reason): line = "\(name): skipped (\(reason.rawValue))"
    case .failed(let phase, let message, _): line = "\(name): failed in \(phase): \(message)"
    }
    line += " [\(timings); total \(total) ms]"
    for warning in report.warnings { line += "\n  warning: \(warning)" }
    return line
}

/// Clears an inherited signal mask. A parent that starts us from a thread blocking signals (as
/// Foundation's `Process` does from a dispatch thread) would otherwise leave SIGTERM and SIGHUP
/// blocked, and the daemon would neither stop nor reload.
func unblockSignals() {
    var empty = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, nil)
}
