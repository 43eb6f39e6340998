import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The systemd unit, `make install`/`uninstall` into a DESTDIR, and the `.deb` (built from the
/// same tree with the test's binary, so no release build is needed).
@Suite("install: unit, make install/uninstall, .deb")
struct InstallTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let unit = root + "/systemd/recontextd.service"

    static func scratch(_ label: String) throws -> String {
        let directory = NSTemporaryDirectory() + "recontextd-\(label)-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    static var makeSkipReason: String? {
        for program in ["/usr/bin/make", "/usr/bin/python3", "/usr/bin/install"]
        where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing"
        }
        guard FileManager.default.isExecutableFile(atPath: RecontextdProcess.binary) else {
            return "no recontextd binary built"
        }
        return nil
    }

    /// The guest companion's version (the `RECONTEXT_VERSION=` line of guest/recontext-apply).
    static var guestVersion: String {
        let script = (try? String(contentsOfFile: root + "/guest/recontext-apply", encoding: .utf8)) ?? ""
        let line = script.split(separator: "\n").first { $0.hasPrefix("RECONTEXT_VERSION=") } ?? ""
        return String(line.dropFirst("RECONTEXT_VERSION=".count))
    }

    static var analyzeSkipReason: String? {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")
            ? nil : "systemd-analyze is missing (Debian package systemd)"
    }

    /// `make TARGET VARIABLES…` in the repository with this test's binary and a private GEN.
    @discardableResult
    static func make(_ target: String, _ variables: [String: String], gen: String) async throws -> String {
        var arguments = [
            "-C", root, "--no-print-directory", target, "BINARY=\(RecontextdProcess.binary)", "GEN=\(gen)",
            "PYTHON=/usr/bin/python3",
        ]
        arguments += variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return try await run("/usr/bin/make", arguments)
    }

    /// ``ProcessRunner/run(_:_:environment:)`` off the cooperative thread pool.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws
        -> String
    {
        try await offload { try ProcessRunner.run(executable, arguments, environment: environment) }
    }

    /// ``ProcessRunner/runAllowingFailure(_:_:environment:)`` off the cooperative thread pool.
    static func runAllowingFailure(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    ) async throws -> (status: Int32, standardOutput: String, standardError: String) {
        try await offload { try ProcessRunner.runAllowingFailure(executable, arguments, environment: environment) }
    }

    /// A copy of `unit` whose ExecStart names `binary` (verify needs the program to exist).
    static func verifiable(_ unit: String, from path: String, to binary: String, in directory: String) throws -> String
    {
        let text = try String(contentsOfFile: unit, encoding: .utf8).replacingOccurrences(of: path, with: binary)
        let copy = directory + "/verify/recontextd.service"
        try FileManager.default.createDirectory(atPath: directory + "/verify", withIntermediateDirectories: true)
        try text.write(toFile: copy, atomically: true, encoding: .utf8)
        return copy
    }

    // MARK: - The binary

    /// Foundation with its internationalization and ICU is ~9 MiB of a ~48 MiB idle daemon
    /// (BENCHMARKS.md); the daemon uses FoundationEssentials only. An `import Foundation` in a source
    /// file, or a dependency that imports it, brings them back: this names the libraries that did.
    @Test("the daemon links no Foundation, only FoundationEssentials")
    func linksNoFoundation() async throws {
        let result = try await Self.runAllowingFailure("/usr/bin/readelf", ["--dynamic", RecontextdProcess.binary])
        #expect(result.status == 0, "\(result.standardError)")
        let needed = result.standardOutput.split(separator: "\n").filter { $0.contains("(NEEDED)") }
            .compactMap { line in line.split(separator: "[").last?.split(separator: "]").first.map(String.init) }
        #expect(needed.contains("libFoundationEssentials.so"), "\(needed)")
        let foundation = needed.filter {
            ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so", "libFoundationXML.so"]
                .contains($0)
        }
        #expect(foundation.isEmpty, "linked: \(foundation); all: \(needed)")
    }

    // MARK: - The unit

    @Test(
        "systemd-analyze verify passes on the unit (ExecStart pointed at the built binary)",
        .realPart(missing: analyzeSkipReason))
    func verifyUnit() async throws {
        let directory = try Self.scratch("verify")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = try Self.verifiable(
            Self.unit, from: "/usr/bin/recontextd", to: RecontextdProcess.binary, in: directory)
        // --man=no: the page is not installed here (the installed unit is verified with it below).
        let result = try await Self.runAllowingFailure("/usr/bin/systemd-analyze", ["verify", "--man=no", copy])
        #expect(result.status == 0, "\(result.standardError)\(result.standardOutput)")
        #expect(result.standardError.isEmpty, "\(result.standardError)")
        let text = try String(contentsOfFile: Self.unit, encoding: .utf8)
        for line in [
            "Type=notify", "NotifyAccess=main", "ExecStartPre=/usr/bin/recontextd check-config",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure", "RestartPreventExitStatus=78", "RuntimeDirectory=recontextd",
            "StateDirectory=recontextd",
            "ConfigurationDirectory=recontextd", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
            "RestrictAddressFamilies=AF_UNIX", "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
            "Wants=libvirtd.service virtqemud.socket",
        ] {
            #expect(text.contains("\n" + line + "\n"), "\(line) missing")
        }
    }

    @Test(
        "the exposure score from systemd-analyze security --offline is low and the one README quotes",
        .realPart(missing: analyzeSkipReason))
    func exposure() async throws {
        let directory = try Self.scratch("security")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = try Self.verifiable(
            Self.unit, from: "/usr/bin/recontextd", to: RecontextdProcess.binary, in: directory)
        let result = try await Self.runAllowingFailure(
            "/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", copy])
        let line = try #require(
            result.standardOutput.split(separator: "\n").first { $0.contains("Overall exposure level") },
            "\(result.standardOutput)\(result.standardError)")
        // "→ Overall exposure level for recontextd.service: 1.1 OK 🙂"
        let tail = line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let score = try #require(Double(tail.split(separator: " ").first ?? ""), "\(line)")
        #expect(score <= 2.0, "\(line)")
        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        let quoted = "\(String(format: "%.1f", score)) \(tail.split(separator: " ").dropFirst().first ?? "")"
        #expect(readme.contains("exposure level \(quoted)"), "README should quote \"exposure level \(quoted)\"")
    }

    @Test(
        "the binary runs under the kernel's memory-deny-write-execute (what MemoryDenyWriteExecute=yes enforces)",
        .realPart(
            missing: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? nil : "needs /usr/bin/python3"))
    func memoryDenyWriteExecute() async throws {
        let directory = try Self.scratch("mdwe")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) is inherited across execve (Linux 6.3+);
        // the wrapper checks that a writable+executable mapping is refused, then runs recontextd.
        let wrapper = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0:
                sys.exit(77)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
            if libc.mmap(None, 4096, 7, 0x22, -1, 0) not in (None, 2**64 - 1):
                sys.exit(78)
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let probe = try await Self.runAllowingFailure("/usr/bin/python3", ["-c", wrapper, "/bin/true"])
        if probe.status == 77 {
            print("SKIPPED: this kernel has no PR_SET_MDWE (Linux 6.3+); MemoryDenyWriteExecute= itself uses seccomp")
            return
        }
        #expect(probe.status == 0, "a W+X mapping was allowed under MDWE: \(probe)")
        let node = try TestDriverNode(directory: directory)
        let config = try node.writeConfiguration(directory: directory)
        let check = try await Self.runAllowingFailure(
            "/usr/bin/python3", ["-c", wrapper, RecontextdProcess.binary, "check-config", "--config", config])
        #expect(check.status == 0, "\(check)")
        // The daemon: connect, reconcile (the test driver's run builds an ISO in process), stop.
        let listener = try NotifySocketListener()
        defer { listener.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c", wrapper, RecontextdProcess.binary, "run", "--config", config, "--state-dir", directory + "/state",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = listener.path
        process.environment = environment
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let ready = await listener.waitFor { $0.text == "READY=1" }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(ready != nil)
        #expect(process.terminationStatus == 0)
        let status = try String(
            contentsOfFile: directory + "/state/status/\(TestDriverNode.managedUUID).json", encoding: .utf8)
        #expect(status.contains("\"build\""), "the build phase ran: \(status)")
    }

    // MARK: - make install / uninstall

    @Test(
        "make install DESTDIR=… PREFIX=/usr/local lays out every file; the installed unit verifies with its man page",
        .realPart(missing: makeSkipReason))
    func installLocal() async throws {
        let directory = try Self.scratch("install")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let destdir = directory + "/root"
        try await Self.make("install", ["DESTDIR": destdir], gen: directory + "/gen")
        let expected: [(String, Int)] = [
            ("/usr/local/bin/recontextd", 0o755),
            ("/usr/local/lib/systemd/system/recontextd.service", 0o644),
            ("/usr/local/share/man/man1/recontextd.1", 0o644),
            ("/usr/local/share/bash-completion/completions/recontextd", 0o644),
            ("/usr/local/share/zsh/site-functions/_recontextd", 0o644),
            ("/usr/local/share/fish/vendor_completions.d/recontextd.fish", 0o644),
            ("/usr/local/share/doc/recontextd/README.md", 0o644),
            ("/usr/local/share/doc/recontextd/recontextd.yaml.example", 0o644),
            ("/etc/recontextd/recontextd.yaml", 0o640),
            ("/usr/local/share/recontextd/guest/recontext-guest_\(Self.guestVersion)_all.deb", 0o644),
            ("/usr/local/share/recontextd/guest/recontext-guest-\(Self.guestVersion).tar.gz", 0o644),
        ]
        for (path, mode) in expected {
            var info = stat()
            #expect(stat(destdir + path, &info) == 0, "\(path) missing")
            #expect(Int(info.st_mode & 0o7777) == mode, "\(path): mode \(String(info.st_mode & 0o7777, radix: 8))")
        }
        let hookSource = Self.root + "/systemd/libvirt-hook-qemu"
        if FileManager.default.fileExists(atPath: hookSource) {
            let hook = try String(contentsOfFile: destdir + "/etc/libvirt/hooks/qemu", encoding: .utf8)
            #expect(hook.contains("RECONTEXTD_BINARY_DEFAULT=/usr/local/bin/recontextd"))
        }
        let unit = try String(
            contentsOfFile: destdir + "/usr/local/lib/systemd/system/recontextd.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/recontextd run"))
        #expect(unit.contains("ExecStartPre=/usr/local/bin/recontextd check-config"))
        #expect(!unit.contains("/usr/bin/recontextd"))
        #expect(
            try String(
                contentsOfFile: destdir + "/usr/local/share/bash-completion/completions/recontextd", encoding: .utf8
            ).contains("complete"))
        #expect(
            try String(contentsOfFile: destdir + "/usr/local/share/zsh/site-functions/_recontextd", encoding: .utf8)
                .hasPrefix("#compdef recontextd"))
        #expect(
            try String(
                contentsOfFile: destdir + "/usr/local/share/fish/vendor_completions.d/recontextd.fish", encoding: .utf8
            ).contains("complete -c 'recontextd'"))
        #expect(
            try String(contentsOfFile: destdir + "/etc/recontextd/recontextd.yaml", encoding: .utf8)
                == String(contentsOfFile: Self.root + "/systemd/recontextd.yaml", encoding: .utf8))

        // The man page: every subcommand and option, and troff without warnings.
        let page = try String(contentsOfFile: destdir + "/usr/local/share/man/man1/recontextd.1", encoding: .utf8)
        for text in [
            "recontextd run", "recontextd check\\-config", "recontextd apply", "\\-\\-log\\-target", "\\-\\-config",
        ] {
            #expect(page.contains(text), "\(text) missing from the man page")
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/groff") {
            let groff = try await Self.runAllowingFailure(
                "/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-z", destdir + "/usr/local/share/man/man1/recontextd.1"])
            #expect(groff.status == 0 && groff.standardError.isEmpty, "\(groff.standardError)")
        }

        // The installed unit verifies, man page included, once ExecStart names a program that exists.
        if Self.analyzeSkipReason == nil {
            let copy = try Self.verifiable(
                destdir + "/usr/local/lib/systemd/system/recontextd.service", from: "/usr/local/bin/recontextd",
                to: destdir + "/usr/local/bin/recontextd", in: directory)
            var environment = ProcessInfo.processInfo.environment
            environment["MANPATH"] = destdir + "/usr/local/share/man"
            let verify = try await Self.runAllowingFailure(
                "/usr/bin/systemd-analyze", ["verify", copy], environment: environment)
            #expect(verify.status == 0 && verify.standardError.isEmpty, "\(verify.standardError)")
        }
    }

    @Test(
        "make install never overwrites a configuration or another hook; make uninstall removes only what is ours",
        .realPart(missing: makeSkipReason))
    func installKeepsAndUninstall() async throws {
        let directory = try Self.scratch("install-keep")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let destdir = directory + "/root"
        let variables = ["DESTDIR": destdir, "PREFIX": "/usr"]
        let config = destdir + "/etc/recontextd/recontextd.yaml"
        let otherHook = destdir + "/etc/libvirt/hooks/qemu"
        try FileManager.default.createDirectory(atPath: destdir + "/etc/recontextd", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            atPath: destdir + "/etc/libvirt/hooks", withIntermediateDirectories: true)
        try "host:\n  name: mine\n".write(toFile: config, atomically: true, encoding: .utf8)
        try "#!/bin/sh\n# someone else's hook\n".write(toFile: otherHook, atomically: true, encoding: .utf8)

        let output = try await Self.make("install", variables, gen: directory + "/gen")
        #expect(output.contains("kept \(config)"))
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "host:\n  name: mine\n")
        #expect(FileManager.default.fileExists(atPath: config + ".example"))
        #expect(try String(contentsOfFile: otherHook, encoding: .utf8).contains("someone else's hook"))
        let hookSource = Self.root + "/systemd/libvirt-hook-qemu"
        if FileManager.default.fileExists(atPath: hookSource) {
            #expect(FileManager.default.isExecutableFile(atPath: destdir + "/etc/libvirt/hooks/qemu.d/recontextd"))
        }
        // PREFIX=/usr: Debian's unit and zsh directories.
        #expect(FileManager.default.fileExists(atPath: destdir + "/lib/systemd/system/recontextd.service"))
        #expect(FileManager.default.fileExists(atPath: destdir + "/usr/share/zsh/vendor-completions/_recontextd"))
        #expect(FileManager.default.fileExists(atPath: destdir + "/usr/bin/recontextd"))

        try await Self.make("uninstall", variables, gen: directory + "/gen")
        let left = try FileManager.default.subpathsOfDirectory(atPath: destdir).filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: destdir + "/" + path, isDirectory: &isDirectory)
                && !isDirectory.boolValue
        }
        #expect(left.sorted() == ["etc/libvirt/hooks/qemu", "etc/recontextd/recontextd.yaml"], "left behind: \(left)")
    }

    // MARK: - The .deb

    static var debSkipReason: String? {
        if let reason = makeSkipReason { return reason }
        for program in ["/usr/bin/dpkg-deb", "/usr/bin/readelf"]
        where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing"
        }
        return nil
    }

    @Test(
        "make deb builds a package with the binary, unit, man page, completions, conffile and scripts",
        .realPart(missing: debSkipReason))
    func debContents() async throws {
        let directory = try Self.scratch("deb")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let deb = try await Self.buildDeb(in: directory)
        let info = try await Self.run("/usr/bin/dpkg-deb", ["--info", deb])
        for field in [
            "Package: recontextd", "Version: 0.1.0", "Architecture: ", "Depends: ", "libvirt0", "libisofs6",
            "libsystemd0",
        ] {
            #expect(info.contains(field), "\(field) missing in\n\(info)")
        }
        #expect(try await Self.run("/usr/bin/dpkg-deb", ["--field", deb, "Depends"]).contains("libc6"))
        let contents = try await Self.run("/usr/bin/dpkg-deb", ["--contents", deb])
        for path in [
            "./usr/bin/recontextd", "./lib/systemd/system/recontextd.service", "./usr/share/man/man1/recontextd.1.gz",
            "./usr/share/bash-completion/completions/recontextd", "./usr/share/zsh/vendor-completions/_recontextd",
            "./usr/share/fish/vendor_completions.d/recontextd.fish", "./etc/recontextd/recontextd.yaml",
            "./usr/share/doc/recontextd/README.md",
            "./usr/share/recontextd/guest/recontext-guest_\(Self.guestVersion)_all.deb",
            "./usr/share/recontextd/guest/recontext-guest-\(Self.guestVersion).tar.gz",
        ] {
            #expect(contents.contains(path), "\(path) missing")
        }
        let control = directory + "/control"
        try await Self.run("/usr/bin/dpkg-deb", ["--control", deb, control])
        #expect(
            try String(contentsOfFile: control + "/conffiles", encoding: .utf8) == "/etc/recontextd/recontextd.yaml\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(FileManager.default.isExecutableFile(atPath: control + "/" + script))
            let text = try String(contentsOfFile: control + "/" + script, encoding: .utf8)
            #expect(
                !text.contains("systemctl") || text.contains("[ -d /run/systemd/system ]"),
                "\(script) calls systemctl unguarded")
        }
    }

    static func buildDeb(in directory: String) async throws -> String {
        try await Self.make("deb", ["OUT": directory + "/out", "DEB_COMPRESS": "gzip"], gen: directory + "/gen")
        let debs = try FileManager.default.contentsOfDirectory(atPath: directory + "/out").filter {
            $0.hasSuffix(".deb")
        }
        return directory + "/out/" + (try #require(debs.first))
    }

    /// Installing changes the machine's dpkg database and /usr: only as root, only where CI runs
    /// (CI=true) or when asked (RECONTEXTD_TEST_DEB=1), and never over a recontextd already there.
    /// What the machine lacks for installing (``RealPart``: a failure where every part is required).
    static var debInstallMissing: String? {
        if let reason = debSkipReason { return reason }
        return getuid() == 0 ? nil : "needs root (dpkg -i)"
    }

    /// Why installing is not wanted here (a choice, not a missing part: always a skip).
    static var debInstallSkipReason: String? {
        let environment = ProcessInfo.processInfo.environment
        guard environment["CI"] == "true" || environment["RECONTEXTD_TEST_DEB"] == "1" else {
            return "installs a package on this machine: runs in CI (CI=true) or with RECONTEXTD_TEST_DEB=1"
        }
        if let status = try? ProcessRunner.runAllowingFailure(
            "/usr/bin/dpkg-query", ["-W", "-f=${Status}", "recontextd"]),
            status.status == 0, !status.standardOutput.isEmpty, !status.standardOutput.hasSuffix("not-installed")
        {
            return "a recontextd package is already installed here (\(status.standardOutput)); not touching it"
        }
        for path in [
            "/usr/bin/recontextd", "/lib/systemd/system/recontextd.service", "/usr/share/man/man1/recontextd.1.gz",
        ]
        where FileManager.default.fileExists(atPath: path) {
            return "\(path) exists; the test will not replace it"
        }
        return nil
    }

    /// Everything in one private mount namespace whose /etc is an overlay: the package's
    /// configuration, the hook postinst installs and dpkg's conffile handling all land in the
    /// test's upper directory, never in the machine's /etc.
    static let debScript = #"""
        set -u
        work=$1; deb=$2
        mkdir -p "$work/upper" "$work/overlay-work"
        mount -t overlay recontextd-test-etc -o "lowerdir=/etc,upperdir=$work/upper,workdir=$work/overlay-work" /etc || exit 90
        rm -rf /etc/libvirt/hooks /etc/recontextd
        mkdir -p /etc/libvirt
        say() { echo "$1: $2"; }
        check() { if eval "$2"; then say "$1" yes; else say "$1" no; fi; }
        dpkg -i "$deb" > "$work/dpkg-install.log" 2>&1; say install $?
        say status "$(dpkg-query -W -f='${Status} ${Version}' recontextd)"
        say version "$(/usr/bin/recontextd --version)"
        check binary '[ -x /usr/bin/recontextd ]'
        check unit '[ -f /lib/systemd/system/recontextd.service ]'
        check config '[ -f /etc/recontextd/recontextd.yaml ]'
        check hook 'grep -q "qemu hook for recontextd" /etc/libvirt/hooks/qemu 2>/dev/null || [ ! -f /usr/share/recontextd/libvirt-hook-qemu ]'
        check check-config '/usr/bin/recontextd check-config --config /etc/recontextd/recontextd.yaml > /dev/null'
        check man '[ -f /usr/share/man/man1/recontextd.1.gz ]'
        dpkg -r recontextd > "$work/dpkg-remove.log" 2>&1; say remove $?
        check binary-removed '[ ! -e /usr/bin/recontextd ]'
        check unit-removed '[ ! -e /lib/systemd/system/recontextd.service ]'
        check hook-removed '[ ! -e /etc/libvirt/hooks/qemu ]'
        check config-kept '[ -f /etc/recontextd/recontextd.yaml ]'
        say status-removed "$(dpkg-query -W -f='${Status}' recontextd)"
        dpkg -P recontextd > "$work/dpkg-purge.log" 2>&1; say purge $?
        check config-purged '[ ! -e /etc/recontextd ]'
        check gone '! dpkg-query -W -f="\${Status}" recontextd 2>/dev/null | grep -q "installed\|config-files"'
        """#

    @Test(
        "the .deb installs with dpkg -i, works, and removes cleanly with dpkg -r and dpkg -P",
        .realPart(missing: debInstallMissing),
        .enabled(if: debInstallSkipReason == nil, "\(debInstallSkipReason ?? "")"))
    func debInstallRemove() async throws {
        let directory = try Self.scratch("deb-install")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let deb = try await Self.buildDeb(in: directory)
        defer {
            // Whatever happened: purge, again inside an /etc overlay.
            let cleanup = directory + "/cleanup"
            try? FileManager.default.createDirectory(atPath: cleanup, withIntermediateDirectories: true)
            _ = try? ProcessRunner.runAllowingFailure( // in defer: blocking is unavoidable
                "/usr/bin/unshare",
                [
                    "--mount", "--", "/bin/sh", "-c",
                    #"mkdir -p "$1/u" "$1/w" && mount -t overlay o -o "lowerdir=/etc,upperdir=$1/u,workdir=$1/w" /etc && dpkg -P recontextd"#,
                    "sh", cleanup,
                ])
        }
        let result = try await Self.runAllowingFailure(
            "/usr/bin/unshare", ["--mount", "--", "/bin/sh", "-c", Self.debScript, "sh", directory + "/ns", deb])
        let lines = Dictionary(
            result.standardOutput.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
            }, uniquingKeysWith: { first, _ in first })
        let logs = ["install", "remove", "purge"].map {
            (try? String(contentsOfFile: directory + "/ns/dpkg-\($0).log", encoding: .utf8)) ?? ""
        }
        let context = "\(result.standardOutput)\(result.standardError)\n\(logs.joined(separator: "\n"))"
        #expect(result.status == 0, "\(context)")
        #expect(lines["install"] == "0", "\(context)")
        #expect(lines["status"] == "install ok installed 0.1.0", "\(context)")
        #expect(lines["version"] == "0.1.0")
        for check in [
            "binary", "unit", "config", "hook", "check-config", "man", "binary-removed", "unit-removed", "hook-removed",
            "config-kept", "config-purged", "gone",
        ] {
            #expect(lines[check] == "yes", "\(check): \(lines[check] ?? "nothing")\n\(context)")
        }
        #expect(lines["remove"] == "0" && lines["purge"] == "0", "\(context)")
        #expect(lines["status-removed"] == "deinstall ok config-files", "\(context)")
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/recontextd"))
    }
}
