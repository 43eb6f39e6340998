import Foundation
import TestSupport
import Testing

/// The `qemu` hook installed on two real libvirt hosts whose image directory is host-local (a
/// private directory at the same path on each): without it a live migration fails ("Cannot
/// access storage file"); with it the VM arrives with an empty drive. No recontextd daemon runs
/// here: inserting the new image on arrival is the daemon's part, tested with the daemon.
@Suite(
    "libvirt qemu hook on real hosts with a host-local image directory",
    .serialized,
    .realPart(missing: LibvirtTestHost.skipReason),
    .realPart(missing: HookProgram.skipReason))
struct HookMigrationTests {
    /// The image directory: a private directory inside each host, at the same path.
    static let images = "/tmp/recontextd-hook-private/images"

    @Test("live migration and restore with an image missing on the destination")
    func migrationAndRestore() async throws {
        let root = try TestDirectories.makeImageDirectory("hook-migration")
        defer { try? FileManager.default.removeItem(atPath: root) }
        var configurationA = LibvirtTestHost.Configuration.numbered(21)
        var configurationB = LibvirtTestHost.Configuration.numbered(22)
        configurationA.hostname = "hook-host-a"
        configurationB.hostname = "hook-host-b"
        configurationA.privateDirectories = [Self.images]
        configurationB.privateDirectories = [Self.images]
        configurationA.extraHosts = [configurationB.address: configurationB.hostname]
        configurationB.extraHosts = [configurationA.address: configurationA.hostname]
        async let startA = LibvirtTestHost.start(configurationA)
        async let startB = LibvirtTestHost.start(configurationB)
        let a = try await startA
        let b = try await startB
        defer {
            a.stopBlocking()
            b.stopBlocking()
        }

        // The hook's configuration, where both hosts see it; the front end with its defaults set,
        // since libvirtd passes hooks no environment of ours.
        let config = root + "/recontextd.yaml"
        try "images:\n  directory: \(Self.images)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let frontEnd = try String(contentsOfFile: HookProgram.frontEndPath, encoding: .utf8)
            .replacingOccurrences(
                of: "RECONTEXTD_BINARY_DEFAULT=/usr/bin/recontextd",
                with: "RECONTEXTD_BINARY_DEFAULT=\(HookProgram.binary!)"
            )
            .replacingOccurrences(
                of: "RECONTEXTD_CONFIG_DEFAULT=/etc/recontextd/recontextd.yaml",
                with: "RECONTEXTD_CONFIG_DEFAULT=\(config)")
        func installHook(on host: LibvirtTestHost) throws {
            let hooks = host.stateDirectory.appendingPathComponent("etc/hooks")
            try FileManager.default.createDirectory(at: hooks, withIntermediateDirectories: true)
            let path = hooks.appendingPathComponent("qemu").path
            try frontEnd.write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
            try host.reloadLibvirtd()
        }

        // A VM on A whose context CD-ROM holds an image only A has.
        let uuid = UUID()
        let image = "\(Self.images)/\(uuid.uuidString.lowercased())-g1-0123456789ab.iso"
        let media = root + "/media.iso"
        try TestDirectories.writeMedia(media, tag: "hook")
        _ = try a.runOnHost(["/bin/cp", media, image])
        let name = "hook-vm-\(uuid.uuidString.prefix(8).lowercased())"
        try a.defineDomain(
            LibvirtTestHost.minimalDomainXML(
                name: name, uuid: uuid, cdroms: [.init(bus: .sata, target: "sda", source: image)],
                type: LibvirtTestHost.preferredDomainType))
        _ = try a.virsh(["start", name])

        // Without the hook: refused, the VM stays on A.
        #expect(throws: LibvirtTestHostError.self) {
            try a.virsh(["migrate", "--live", "--persistent", "--undefinesource", name, b.uri])
        }
        #expect(try a.virsh(["domstate", name]).contains("running"))

        // With the hook on both hosts.
        try installHook(on: a)
        try installHook(on: b)
        let start = ContinuousClock.now
        _ = try b.virsh([]) // warm the client binary out of the measurement
        _ = try a.virsh(["migrate", "--live", "--persistent", "--undefinesource", name, b.uri])
        print(
            "hook timing: live migration A to B with the hook rewriting (virsh, real hosts): \(ContinuousClock.now - start)"
        )
        #expect(try b.virsh(["domstate", name]).contains("running"))
        let live = try b.virsh(["dumpxml", name])
        #expect(!live.contains("<source file="), "the live cdrom is empty on B:\n\(live)")
        #expect(live.contains("<target dev='sda' bus='sata'/>"))
        // Only the live definition passes through the hook (field notes §2b).
        #expect(try b.virsh(["dumpxml", "--inactive", name]).contains(image))

        // restore begin: B saves the VM with an image of B's, which is gone when it restores.
        _ = try b.runOnHost(["/bin/cp", media, image])
        _ = try b.virsh(["change-media", name, "sda", image, "--update", "--live"])
        let save = b.stateDirectory.appendingPathComponent("\(name).save").path
        _ = try b.virsh(["save", name, save])
        _ = try b.runOnHost(["/bin/rm", image])
        _ = try b.virsh(["restore", save])
        #expect(try b.virsh(["domstate", name]).contains("running"))
        #expect(!(try b.virsh(["dumpxml", name])).contains("<source file="))
        _ = try? b.virsh(["destroy", name])
    }
}
