import Foundation
import Testing

@testable import RecontextCore

/// Shared inputs and helpers for the RecontextCore tests.
enum Fixtures {
    static let domain = DomainIdentity(name: "web1", uuid: "8F0C6A2E-1B3D-4C5E-9F70-0123456789AB")

    static let host = HostFacts(
        name: "hv1",
        variables: [
            "monitoring_endpoint": "http://10.0.0.5:9090",
            "ntp_server": "10.0.0.1",
            "zone": "rack-1",
            "api_token": "host-secret-token",
        ],
        secretVariables: ["api_token"]
    )

    /// What libvirt hands back after `virsh metadata --key recontext --set ...`: prefixed root,
    /// children prefixed or not, libvirt's indentation.
    static let libvirtXML = """
        <recontext:context xmlns:recontext="urn:recontextd:context:1" managed="yes" format="nocloud" instance-id="per-host" hostname="web-1">
          <recontext:var name="role">web</recontext:var>
          <var name="db_password" secret="yes">p'a"ss$word\\</var>
          <recontext:file path="etc/app.conf" mode="0640" template="yes">endpoint={{host.monitoring_endpoint}}
        role={{vm.role}}
        </recontext:file>
          <file path="bin/tool" mode="0755" encoding="base64">IyEvYmluL3NoCmVjaG8gaGkK</file>
          <recontext:user-data template="yes">#cloud-config
        ntp: {servers: ["{{host.ntp_server}}"]}
        </recontext:user-data>
          <network-config>version: 2
        ethernets: {eth0: {dhcp4: true}}
        </network-config>
        </recontext:context>
        """

    static func parse(_ xml: String, limits: MetadataLimits = .default) throws(ContextError) -> ContextSpec {
        try ContextMetadata.parse(xml, domain: domain, limits: limits)
    }

    static func render(
        _ spec: ContextSpec,
        host: HostFacts = Fixtures.host,
        format: ContextFormat = .noCloud,
        limits: MetadataLimits = .default
    ) throws(ContextError) -> RenderedContext {
        try ContextRenderer(limits: limits).render(spec: spec, host: host, domain: domain, defaultFormat: format)
    }

    /// Expects `body` to throw a ``ContextError`` and returns it.
    static func expectContextError(
        _ body: () throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> ContextError? {
        do {
            try body()
            Issue.record("expected a ContextError, got success", sourceLocation: sourceLocation)
            return nil
        } catch let error as ContextError {
            return error
        } catch {
            Issue.record("expected a ContextError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "recontext-core-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs `SHELL -c script` in a directory and returns its standard output and exit status.
    static func shell(_ script: String, in directory: URL, shell: String = "/bin/sh") throws -> (
        output: String, status: Int32
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: shell)
        process.arguments = ["-c", script]
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: data, as: UTF8.self), process.terminationStatus)
    }
}
