import Foundation

// MARK: - TestDriverNode

/// A libvirt test-driver node (`test:///PATH`): in-process domains a daemon can connect to
/// without any libvirtd, for tests of what the daemon tells systemd and the journal.
///
/// The node has one running domain that opted in (context metadata, a SATA CD-ROM) and one
/// running domain that did not. The test driver cannot change media, so the opted-in domain's run
/// fails in the insert phase with libvirt error 3 (`VIR_ERR_NO_SUPPORT`): a failure with a real
/// libvirt error code, every time.
public struct TestDriverNode: Sendable {
    /// The opted-in domain.
    public static let managedName = "ctx-vm"
    /// Its UUID.
    public static let managedUUID = "8d6f0a4e-2b1c-4c7e-9a55-0123456789ab"
    /// The domain without context metadata.
    public static let unmanagedName = "plain-vm"
    /// Its UUID.
    public static let unmanagedUUID = "1c0ffee0-2b1c-4c7e-9a55-0123456789ab"

    /// The node file.
    public let path: String
    /// `test:///PATH`.
    public var uri: String { "test://" + path }

    /// Writes the node file into `directory`.
    public init(directory: String) throws {
        path = directory + "/test-node.xml"
        let xml = """
            <node>
              <domain type="test">
                <name>\(Self.managedName)</name>
                <uuid>\(Self.managedUUID)</uuid>
                <memory>1048576</memory>
                <vcpu>1</vcpu>
                <os><type arch="x86_64">hvm</type></os>
                <metadata>
                  <recontext:context xmlns:recontext="urn:recontextd:context:1" format="nocloud">\
            <recontext:var name="role">web</recontext:var></recontext:context>
                </metadata>
                <devices>
                  <disk type="file" device="cdrom"><target dev="sda" bus="sata"/><readonly/></disk>
                </devices>
              </domain>
              <domain type="test">
                <name>\(Self.unmanagedName)</name>
                <uuid>\(Self.unmanagedUUID)</uuid>
                <memory>1048576</memory>
                <vcpu>1</vcpu>
                <os><type arch="x86_64">hvm</type></os>
              </domain>
            </node>
            """
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A daemon configuration for this node with images and state below `directory`; returns
    /// its path.
    public func writeConfiguration(directory: String, extra: String = "") throws -> String {
        let path = directory + "/recontextd.yaml"
        let yaml = """
            libvirt:
              uri: "\(uri)"
            images:
              directory: \(directory)/images
            host:
              name: test-driver-host
            pipeline:
              reconcile-interval: 0
              retry:
                attempts: 2
                initial-backoff: 10ms
            \(extra)
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
