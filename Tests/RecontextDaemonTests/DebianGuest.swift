import Foundation
import TestSupport

/// The Debian 12 test guest (`Tests/Harness/debian/`): its image, its context metadata and what it
/// prints on its serial console.
///
/// The guest has systemd, udev and Debian's cloud-init, and no companion: cloud-init installs it
/// from the context CD-ROM at first boot (the metadata's `companion="yes"` puts the packages
/// there, its user data runs `dpkg -i`). The user data also writes a hook that prints
/// `RECONTEXT-HOOK endpoint=E generation=N host=H trigger=T keys=K instance=I instances=C` on the
/// console after every apply (K: a hash of the SSH host public keys; C: how many instances
/// cloud-init knows), and prints `RECONTEXT-FIRSTBOOT hostname=… instance=… keys=…` once per
/// instance. The image prints `RECONTEXT-BOOTED uptime=S` when multi-user.target is reached.
enum DebianGuest {
    static let harness = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Harness/debian")
    /// The repository's root.
    static let repository = harness.deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    /// Where the image is built and cached (keyed by the build script's hash).
    static let imageDirectory = "/var/cache/recontextd-tests/debian"
    /// The hostname the metadata gives the guest.
    static let hostname = "deb-guest"

    /// What the machine lacks for this suite: a libvirt test host's parts, or the tools that
    /// build the image and the companion's packages.
    static var skipReason: String? {
        if let reason = LibvirtTestHost.skipReason { return reason }
        for (program, package) in [
            ("/usr/bin/mmdebstrap", "mmdebstrap"), ("/sbin/mkfs.ext4", "e2fsprogs"),
            ("/usr/bin/qemu-img", "qemu-utils"),
            ("/usr/bin/make", "make"), ("/usr/bin/dpkg-deb", "dpkg"),
        ] where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing (Debian package \(package); scripts/setup installs it)"
        }
        return nil
    }

    /// Builds the image, or finds it cached; returns how long that took.
    static func build() throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        try ProcessRunner.run(
            "/bin/sh", [harness.appendingPathComponent("build-debian-guest.sh").path, imageDirectory])
        return clock.now - start
    }

    /// `make guest-deb guest-tarball` into `directory` (the daemons' `context.companion-directory`).
    static func buildCompanion(into directory: String) throws {
        try ProcessRunner.run(
            "/usr/bin/make",
            ["-s", "-C", repository.path, "guest-deb", "guest-tarball", "GEN=\(directory)/gen", "OUT=\(directory)"])
        try? FileManager.default.removeItem(atPath: directory + "/gen")
    }

    /// A qcow2 overlay on the cached image, for one run.
    static func makeOverlay(_ path: String) throws {
        try ProcessRunner.run(
            "/usr/bin/qemu-img",
            ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", imageDirectory + "/disk.raw", path])
    }

    /// The domain XML (`debian-domain.xml.sh`), with or without the channel, the CD-ROM on `bus`
    /// (`sata` or `scsi`).
    static func domainXML(name: String, disk: String, serialLog: String, channel: Bool, bus: String = "sata")
        throws -> String
    {
        var environment = ProcessInfo.processInfo.environment
        environment["DEBIAN_GUEST_CHANNEL"] = channel ? "1" : "0"
        environment["DEBIAN_GUEST_CDROM_BUS"] = bus
        return try ProcessRunner.run(
            "/bin/sh",
            [harness.appendingPathComponent("debian-domain.xml.sh").path, name, imageDirectory, disk, serialLog],
            environment: environment)
    }

    /// The hook that prints what the test checks, written by cloud-init's `write_files`.
    static let hook = #"""
        #!/bin/sh
        # recontextd's Debian guest test: what the test checks, on the serial console.
        endpoint=$(sed -n 's/^endpoint=\([^ ]*\).*/\1/p' "$RECONTEXT_DIR/etc/monitoring.conf")
        keys=$(cat /etc/ssh/ssh_host_*_key.pub | sha256sum | cut -c1-16)
        instances=$(ls /var/lib/cloud/instances | wc -l)
        echo "RECONTEXT-HOOK endpoint=${endpoint:--} generation=$RECONTEXT_GENERATION host=$RECONTEXT_HOST trigger=$RECONTEXT_TRIGGER keys=$keys instance=$(cat /var/lib/cloud/data/instance-id) instances=$instances" > /dev/ttyS0
        """#

    /// The user data: the hook, a first-boot line, and the companion installed from the CD
    /// (README "Guest companion", the snippet checked here), plus three settings that shorten
    /// the first boot.
    static var userData: String {
        let hookLines = hook.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }
        let lines =
            [
                "#cloud-config",
                // Shorter first boot under TCG: one host key type (RSA 3072 alone takes ~20 s),
                // no locale generation, no resize of a disk that has the file system's size.
                "ssh_genkeytypes: [ed25519]",
                "locale: false",
                "resize_rootfs: false",
                "write_files:",
                "  - path: /etc/recontext/hooks.d/50-console",
                "    permissions: '0755'",
                "    content: |",
            ] + hookLines + [
                "runcmd:",
                #"  - [sh, -c, 'echo "RECONTEXT-FIRSTBOOT hostname=$(hostname) instance=$(cat /var/lib/cloud/data/instance-id) keys=$(cat /etc/ssh/ssh_host_*_key.pub | sha256sum | cut -c1-16)" > /dev/ttyS0']"#,
                "  - [sh, -c, 'mount -o ro LABEL=cidata /mnt && dpkg -i /mnt/recontext/guest/*.deb; umount /mnt']",
            ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The context metadata: NoCloud with the companion, a hostname, the monitoring endpoint; with
    /// `channel`, `channel="add"` (recontextd hot-plugs the channel's port).
    static func metadata(channel: Bool = false) -> String {
        """
        <context format="nocloud" hostname="\(hostname)" companion="yes"\(channel ? " channel=\"add\"" : "")>\
        <file path="etc/monitoring.conf" template="yes">endpoint={{host.monitoring_endpoint}}</file>\
        <user-data><![CDATA[\(userData)]]></user-data></context>
        """
    }

    // MARK: - The console

    /// A `RECONTEXT-…` line of the console: its kind and its `key=value` fields.
    struct ConsoleLine: CustomStringConvertible {
        let kind: String
        let fields: [String: String]
        let text: String
        var description: String { text }
    }

    /// The `RECONTEXT-…` lines the guest printed so far (text before the marker on the same line,
    /// from another writer of the console, is dropped).
    static func consoleLines(_ serialLog: String) -> [ConsoleLine] {
        guard let data = FileManager.default.contents(atPath: serialLog) else { return [] }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).compactMap { line in
            guard let start = line.range(of: "RECONTEXT-") else { return nil }
            let text = String(line[start.lowerBound...])
            let words = text.split(separator: " ")
            var fields: [String: String] = [:]
            for word in words.dropFirst() {
                guard let equals = word.firstIndex(of: "=") else { continue }
                fields[String(word[..<equals])] = String(word[word.index(after: equals)...])
            }
            return ConsoleLine(kind: String(words[0]), fields: fields, text: text)
        }
    }

    /// Waits for a line of `kind` whose fields include `fields`, after the first `after` lines;
    /// returns it and the time waited. Looks every 50 ms (the log grows to some 100 KiB).
    static func waitForLine(
        _ serialLog: String, kind: String, fields: [String: String] = [:], after: Int = 0, timeout: Duration
    ) async -> (ConsoleLine, Duration)? {
        let clock = ContinuousClock()
        let start = clock.now
        let found = await eventuallyValue(timeout: timeout, every: .milliseconds(50)) {
            consoleLines(serialLog).dropFirst(after).first { line in
                line.kind == kind && fields.allSatisfy { line.fields[$0.key] == $0.value }
            }
        }
        return found.map { ($0, clock.now - start) }
    }
}
