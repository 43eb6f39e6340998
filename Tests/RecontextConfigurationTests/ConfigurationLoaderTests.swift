import Foundation
import Logging
import RecontextCore
import Testing

@testable import RecontextConfiguration

@Suite("Configuration loader")
struct ConfigurationLoaderTests {
    static let file = "/etc/recontextd/recontextd.yaml"

    static func parse(_ yaml: String) throws(ConfigurationErrors) -> DaemonConfiguration {
        try ConfigurationLoader.parse(yaml: yaml, file: file, hostName: "testhost")
    }

    static func problems(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigurationProblem] {
        do {
            _ = try parse(yaml)
            Issue.record("expected problems", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("an empty file (or only comments) gives every default")
    func defaults() throws {
        for yaml in ["", "# nothing here\n", "---\n", "~\n"] {
            let config = try Self.parse(yaml)
            #expect(config == DaemonConfiguration(hostName: "testhost"))
        }
        let config = try Self.parse("")
        #expect(config.libvirt.uri == "qemu:///system")
        #expect(config.libvirt.reconnectMaxBackoff == .seconds(30))
        #expect(config.images.directory == "/var/lib/recontextd/images")
        #expect(config.images.mode == 0o640)
        #expect(config.images.group == nil)
        #expect(config.images.maxSize == 16 << 20)
        #expect(config.images.shared == false)
        #expect(config.host == HostFacts(name: "testhost"))
        #expect(config.context.defaultFormat == .noCloud)
        #expect(config.context.managed == .optIn)
        #expect(config.context.instanceID == .stable)
        #expect(config.context.device.mode == .mediaChange)
        #expect(config.context.device.target == nil)
        #expect(config.context.companionDirectory == "/usr/share/recontextd/guest")
        #expect(config.pipeline.concurrency == 4)
        #expect(config.pipeline.reconcileInterval == .seconds(300))
        #expect(config.pipeline.retry.attempts == 5)
        #expect(config.pipeline.retry.initialBackoff == .milliseconds(200))
        #expect(config.pipeline.retry.maxBackoff == .milliseconds(10_000))
        #expect(config.limits == MetadataLimits())
        #expect(config.logLevel == .info)
    }

    static let fullExample = """
        libvirt:
          uri: qemu+ssh://root@hv1/system
          reconnect-max-backoff: 2m
        images:
          directory: /srv/recontext/images
          mode: "0644"
          group: libvirt-qemu
          max-size: 32MiB
          shared: true
        host:
          name: hv1.example.net
          variables:
            monitoring_endpoint: http://10.0.0.5:9090
            ntp_server: 10.0.0.1
            proxy: "http://proxy:3128"
            zone: rack-1
            port: 8080
            empty: ""
            api_token: s3cr3t
          secret-variables: [api_token]
        context:
          default-format: opennebula
          managed: all
          instance-id: per-host
          device:
            mode: scsi-replace
            target: sdz
          companion-directory: /srv/recontext/guest
        pipeline:
          concurrency: 8
          reconcile-interval: 0
          retry:
            attempts: 3
            initial-backoff: 1s
            max-backoff: 30000
        limits:
          max-files: 10
          max-file-size: 64KiB
          max-total-size: 1MiB
          max-path-length: 100
          max-path-depth: 4
          max-depth: 4
          max-variables: 20
          max-name-length: 32
          max-metadata-size: 2MiB
        log:
          level: debug
        """

    @Test("the full example: every key read")
    func fullExample() throws {
        let config = try Self.parse(Self.fullExample)
        #expect(config.libvirt.uri == "qemu+ssh://root@hv1/system")
        #expect(config.libvirt.reconnectMaxBackoff == .seconds(120))
        #expect(config.images.directory == "/srv/recontext/images")
        #expect(config.images.mode == 0o644)
        #expect(config.images.group == "libvirt-qemu")
        #expect(config.images.maxSize == 32 << 20)
        #expect(config.images.shared == true)
        #expect(config.host.name == "hv1.example.net")
        #expect(
            config.host.variables == [
                "monitoring_endpoint": "http://10.0.0.5:9090", "ntp_server": "10.0.0.1", "proxy": "http://proxy:3128",
                "zone": "rack-1",
                "port": "8080", "empty": "", "api_token": "s3cr3t",
            ]
        )
        #expect(config.host.secretVariables == ["api_token"])
        #expect(config.context.defaultFormat == .openNebula)
        #expect(config.context.managed == .all)
        #expect(config.context.instanceID == .perHost)
        #expect(config.context.device.mode == .scsiReplace)
        #expect(config.context.device.target == "sdz")
        #expect(config.context.companionDirectory == "/srv/recontext/guest")
        #expect(config.pipeline.concurrency == 8)
        #expect(config.pipeline.reconcileInterval == nil)
        #expect(config.pipeline.retry.attempts == 3)
        #expect(config.pipeline.retry.initialBackoff == .seconds(1))
        #expect(config.pipeline.retry.maxBackoff == .seconds(30))
        #expect(
            config.limits
                == MetadataLimits(
                    maxFiles: 10,
                    maxFileBytes: 64 << 10,
                    maxTotalBytes: 1 << 20,
                    maxPathLength: 100,
                    maxPathComponents: 4,
                    maxDepth: 4,
                    maxVariables: 20,
                    maxNameLength: 32,
                    maxMetadataBytes: 2 << 20
                )
        )
        #expect(config.logLevel == .debug)
    }

    @Test("the example in DaemonConfiguration's documentation is valid")
    func documentedExample() throws {
        let yaml = """
            libvirt:
              uri: qemu:///system
              reconnect-max-backoff: 30
            images:
              directory: /var/lib/recontextd/images
              mode: "0640"
              group: libvirt-qemu
              max-size: 16MiB
            host:
              name: hv1
              variables:
                monitoring_endpoint: http://10.0.0.5:9090
                ntp_server: 10.0.0.1
                proxy: http://proxy:3128
                zone: rack-1
                api_token: s3cr3t
              secret-variables: [api_token]
            context:
              default-format: nocloud
              managed: opt-in
              instance-id: stable
              device:
                mode: media-change
                target: sdz
            pipeline:
              concurrency: 4
              reconcile-interval: 300
              retry:
                attempts: 5
                initial-backoff: 200
                max-backoff: 10000
            limits:
              max-files: 256
              max-file-size: 1MiB
              max-total-size: 8MiB
              max-path-length: 255
              max-path-depth: 8
              max-depth: 8
              max-variables: 1024
              max-name-length: 128
              max-metadata-size: 16MiB
            log:
              level: info
            """
        var expected = DaemonConfiguration(hostName: "hv1")
        expected.images.group = "libvirt-qemu"
        expected.context.device.target = "sdz"
        expected.host.variables = [
            "monitoring_endpoint": "http://10.0.0.5:9090", "ntp_server": "10.0.0.1", "proxy": "http://proxy:3128",
            "zone": "rack-1",
            "api_token": "s3cr3t",
        ]
        expected.host.secretVariables = ["api_token"]
        #expect(try Self.parse(yaml) == expected)
    }

    @Test("every problem is reported, each with its line and key path")
    func everyProblem() {
        let yaml = """
            libvirt:
              uri: qemu:///system
              reconect-max-backoff: 30
            images:
              mode: rw
              max-size: 16MB
            host:
              variables:
                good: x
                bad name: y
              secret-variables: [missing]
            context:
              default-format: cloudinit
            pipeline:
              concurrency: 0
              retry:
                initial-backoff: 20s
                max-backoff: 1s
            log:
              level: loud
            colour: blue
            """
        let problems = Self.problems(yaml)
        let lines = problems.map { "\($0.line) \($0.key)" }
        #expect(
            lines == [
                "3 libvirt.reconect-max-backoff",
                "5 images.mode",
                "6 images.max-size",
                "10 host.variables.bad name",
                "11 host.secret-variables",
                "13 context.default-format",
                "15 pipeline.concurrency",
                "17 pipeline.retry.initial-backoff",
                "20 log.level",
                "21 colour",
            ]
        )
        let text = ConfigurationErrors(problems: problems).description
        #expect(text.split(separator: "\n").count == 10)
        #expect(
            text.contains(
                #"/etc/recontextd/recontextd.yaml:5: images.mode: expected an octal mode like "0640", got "rw""#))
        #expect(
            text.contains(
                #"/etc/recontextd/recontextd.yaml:3: libvirt.reconect-max-backoff: unknown key "reconect-max-backoff"; did you mean "reconnect-max-backoff"?"#
            )
        )
        #expect(text.contains(#"images.max-size: expected a size like "16MiB""#))
        #expect(text.contains(#"host.secret-variables: "missing" is not one of host.variables"#))
        #expect(
            text.contains(
                #"context.default-format: expected one of nocloud, configdrive, opennebula, files, got "cloudinit""#))
        #expect(text.contains("pipeline.concurrency: expected an integer from 1 to 256, got \"0\""))
        #expect(text.contains("initial-backoff (20.0 seconds) is longer than max-backoff (1.0 seconds)"))
        #expect(
            text.contains(
                #"log.level: expected one of trace, debug, info, notice, warning, error, critical, got "loud""#))
        #expect(text.contains(#"/etc/recontextd/recontextd.yaml:21: colour: unknown key "colour""#))
    }

    @Test(
        "wrong shapes are reported",
        arguments: [
            ("libvirt: qemu:///system", "libvirt", "expected a mapping"),
            ("images:\n  directory: relative/path", "images.directory", "absolute path"),
            ("images:\n  mode:", "images.mode", "got nothing"),
            ("images:\n  mode: 0o1777", "images.mode", "octal mode"),
            ("images:\n  group: \"bad group!\"", "images.group", "group name"),
            ("host:\n  name: \"has space\"", "host.name", "host name"),
            ("host:\n  variables: [a, b]", "host.variables", "mapping of variable names"),
            ("host:\n  variables:\n    name: x", "host.variables.name", "reserved"),
            ("host:\n  variables:\n    nested: {a: b}", "host.variables.nested", "expected a string, got a mapping"),
            ("host:\n  secret-variables: api_token", "host.secret-variables", "list of variable names"),
            ("context:\n  managed: some", "context.managed", "opt-in, all"),
            ("context:\n  device:\n    mode: hotplug", "context.device.mode", "media-change, scsi-replace"),
            ("context:\n  device:\n    target: /dev/sdz", "context.device.target", "target device name"),
            ("context:\n  instance-id: per_host", "context.instance-id", "did you mean \"per-host\""),
            ("context:\n  companion-directory: guest", "context.companion-directory", "absolute path"),
            ("pipeline:\n  reconcile-interval: soon", "pipeline.reconcile-interval", "whole number of seconds"),
            ("pipeline:\n  reconcile-interval: -5", "pipeline.reconcile-interval", "whole number of seconds"),
            ("pipeline:\n  retry:\n    attempts: many", "pipeline.retry.attempts", "integer from 1 to 100"),
            ("pipeline:\n  retry:\n    initial-backoff: 0", "pipeline.retry.initial-backoff", "above 0"),
            ("limits:\n  max-files: -1", "limits.max-files", "integer"),
            ("limits:\n  max-file-size: 1TB", "limits.max-file-size", "size like"),
            ("limits:\n  max-fils: 3", "limits.max-fils", "did you mean \"max-files\""),
            ("- just\n- a list", "", "expected a mapping"),
            ("libvirt:\n  uri: [a]", "libvirt.uri", "expected a string, got a list"),
            ("libvirt:\n  uri: \"not a uri\"", "libvirt.uri", "libvirt URI"),
        ]
    )
    func wrongShapes(yaml: String, key: String, message: String) {
        let problems = Self.problems(yaml)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.key == key, "\(problems)")
        #expect(problems.first?.message.contains(message) == true, "\(problems)")
        #expect((problems.first?.line ?? 0) >= 1)
    }

    @Test(
        "durations and sizes in every accepted spelling",
        arguments: [
            ("30", Duration.seconds(30)), ("30s", .seconds(30)), ("1500ms", .milliseconds(1500)), ("2m", .seconds(120)),
            ("1h", .seconds(3600)),
        ]
    )
    func durations(text: String, expected: Duration) throws {
        #expect(try Self.parse("libvirt:\n  reconnect-max-backoff: \(text)").libvirt.reconnectMaxBackoff == expected)
    }

    @Test(
        "retry backoffs are milliseconds unless a unit says otherwise",
        arguments: [("250", Duration.milliseconds(250)), ("2s", .seconds(2))])
    func milliseconds(text: String, expected: Duration) throws {
        #expect(
            try Self.parse("pipeline:\n  retry:\n    initial-backoff: \(text)").pipeline.retry.initialBackoff
                == expected)
    }

    @Test(
        "sizes",
        arguments: [
            ("16MiB", 16 << 20), ("512KiB", 512 << 10), ("1048576", 1 << 20), ("1GiB", 1 << 30), ("65536B", 65536),
        ])
    func sizes(text: String, expected: Int) throws {
        #expect(try Self.parse("images:\n  max-size: \(text)").images.maxSize == expected)
    }

    @Test("modes, quoted or not", arguments: [("\"0640\"", UInt16(0o640)), ("0600", 0o600), ("'755'", 0o755)])
    func modes(text: String, expected: UInt16) throws {
        #expect(try Self.parse("images:\n  mode: \(text)").images.mode == expected)
    }

    @Test("every log level", arguments: Logger.Level.allCases)
    func logLevels(level: Logger.Level) throws {
        #expect(try Self.parse("log:\n  level: \(level.rawValue)").logLevel == level)
    }

    @Test("YAML syntax errors and duplicate keys are reported with their line")
    func yamlErrors() {
        let syntax = Self.problems("images:\n  mode: \"0640\n  group: x\n")
        #expect(syntax.count == 1)
        #expect(syntax.first?.message.hasPrefix("not valid YAML") == true)
        #expect((syntax.first?.line ?? 0) >= 2)
        let duplicate = Self.problems("images:\n  mode: \"0640\"\n  mode: \"0600\"\n")
        #expect(duplicate.count == 1)
        #expect(duplicate.first?.message.contains("key given twice: mode") == true)
        #expect(duplicate.first?.line == 2)
    }

    @Test("load reads a file; a missing file is an error unless allowed")
    func loadFromDisk() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "recontext-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("recontextd.yaml").path
        try Data("host:\n  name: from-file\npipeline:\n  concurrency: 2\n".utf8).write(to: URL(fileURLWithPath: path))
        let config = try ConfigurationLoader.load(path: path, hostName: "ignored")
        #expect(config.host.name == "from-file")
        #expect(config.pipeline.concurrency == 2)

        let missing = directory.appendingPathComponent("nope.yaml").path
        do {
            _ = try ConfigurationLoader.load(path: missing, hostName: "h")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(missing): no such file")
        }
        #expect(
            try ConfigurationLoader.load(path: missing, hostName: "h", allowMissing: true)
                == DaemonConfiguration(hostName: "h"))

        try Data("images:\n  mode: rw\n".utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ConfigurationLoader.load(path: path, hostName: "h")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(path):2: images.mode: expected an octal mode like \"0640\", got \"rw\"")
        }
    }

    @Test("the host name defaults to the machine's hostname; invalid configs exit 78")
    func hostNameAndExitCode() throws {
        let name = ConfigurationLoader.systemHostName()
        #expect(!name.isEmpty)
        #expect(try ConfigurationLoader.parse(yaml: "", file: "x").host.name == name)
        #expect(ConfigurationErrors.exitCode == 78)
    }

    @Test("a problem without a line prints without one")
    func problemDescription() {
        #expect(ConfigurationProblem(file: "f", line: 0, column: 0, key: "", message: "m").description == "f: m")
        #expect(
            ConfigurationProblem(file: "f", line: 3, column: 1, key: "a.b", message: "m").description == "f:3: a.b: m")
    }

    // MARK: - log.target and metrics.*

    @Test("log.target and metrics.* default to auto and off")
    func serviceDefaults() throws {
        let config = try Self.parse("")
        #expect(config.logTarget == .auto)
        #expect(config.metrics.textfile == nil)
        #expect(config.metrics.interval == .seconds(15))
        #expect(config.metrics.listen == nil)
        let empty = try Self.parse("log:\nmetrics:\n  textfile:\n  listen:\n")
        #expect(empty.metrics == DaemonConfiguration.Metrics())
    }

    @Test("log.target and metrics.* are read", arguments: DaemonConfiguration.LogTarget.allCases)
    func serviceKeys(target: DaemonConfiguration.LogTarget) throws {
        let config = try Self.parse(
            """
            log:
              level: notice
              target: \(target.rawValue)
            metrics:
              textfile: /var/lib/prometheus/node-exporter/recontextd.prom
              interval: 1m
              listen: unix:/run/recontextd/metrics.sock
            """)
        #expect(config.logLevel == .notice)
        #expect(config.logTarget == target)
        #expect(config.metrics.textfile == "/var/lib/prometheus/node-exporter/recontextd.prom")
        #expect(config.metrics.interval == .seconds(60))
        #expect(config.metrics.listen == .unix(path: "/run/recontextd/metrics.sock"))
    }

    @Test(
        "metrics.listen takes a unix socket or a loopback address only",
        arguments: [
            ("unix:/run/recontextd/metrics.sock", MetricsListenAddress.unix(path: "/run/recontextd/metrics.sock")),
            ("127.0.0.1:9466", .tcp(host: "127.0.0.1", port: 9466)),
            ("127.10.0.3:80", .tcp(host: "127.10.0.3", port: 80)),
            ("localhost:9466", .tcp(host: "127.0.0.1", port: 9466)),
            ("\"[::1]:9466\"", .tcp(host: "::1", port: 9466)),
        ]
    )
    func listenAddresses(text: String, expected: MetricsListenAddress) throws {
        let config = try Self.parse("metrics:\n  listen: \(text)")
        #expect(config.metrics.listen == expected)
        #expect(config.metrics.listen?.needsInternetSockets == (text.hasPrefix("unix:") ? false : true))
        #expect(
            expected.description
                == text.replacingOccurrences(of: "\"", with: "").replacingOccurrences(
                    of: "localhost", with: "127.0.0.1"))
    }

    @Test(
        "wrong log.target and metrics.* values are reported",
        arguments: [
            ("log:\n  target: syslog", "log.target", "expected one of auto, journal, stderr"),
            ("log:\n  targt: journal", "log.targt", "did you mean \"target\""),
            ("metrics:\n  textfile: relative.prom", "metrics.textfile", "absolute file path"),
            ("metrics:\n  textfile: /var/lib/prometheus/node-exporter/recontextd.txt", "metrics.textfile", "*.prom"),
            ("metrics:\n  interval: 0", "metrics.interval", "above 0"),
            ("metrics:\n  listen: 0.0.0.0:9466", "metrics.listen", "not a loopback address"),
            ("metrics:\n  listen: 10.0.0.5:9466", "metrics.listen", "not a loopback address"),
            ("metrics:\n  listen: \"[::]:9466\"", "metrics.listen", "only a loopback address"),
            ("metrics:\n  listen: example.com:9466", "metrics.listen", "only a loopback address"),
            ("metrics:\n  listen: 127.0.0.1:http", "metrics.listen", "port from 1 to 65535"),
            ("metrics:\n  listen: 127.0.0.1:0", "metrics.listen", "port from 1 to 65535"),
            ("metrics:\n  listen: unix:relative.sock", "metrics.listen", "absolute path"),
            ("metrics:\n  port: 9466", "metrics.port", "unknown key"),
        ]
    )
    func wrongServiceValues(yaml: String, key: String, message: String) {
        let problems = Self.problems(yaml)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.key == key, "\(problems)")
        #expect(problems.first?.message.contains(message) == true, "\(problems)")
        #expect((problems.first?.line ?? 0) >= 1)
    }

    @Test("the shipped example configuration (systemd/recontextd.yaml) is valid and turns the textfile on")
    func shippedExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try ConfigurationLoader.load(
            path: root.appendingPathComponent("systemd/recontextd.yaml").path, hostName: "h")
        #expect(config.logTarget == .auto)
        #expect(config.metrics.textfile == "/var/lib/prometheus/node-exporter/recontextd.prom")
        #expect(config.metrics.listen == nil)
    }
}
