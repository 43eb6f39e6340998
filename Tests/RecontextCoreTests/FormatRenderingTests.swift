import Foundation
import Testing
import YAML

@testable import RecontextCore

@Suite("Formats: NoCloud, ConfigDrive, plain files, and what every format shares")
struct FormatRenderingTests {
    static func spec(format: ContextFormat) throws -> ContextSpec {
        var spec = try Fixtures.parse(Fixtures.libvirtXML)
        spec.format = format
        if format != .noCloud { spec.networkConfig = nil }
        if format == .files { spec.userData = nil }
        return spec
    }

    static func yaml(_ file: RenderedFile?) throws -> [String: Any] {
        let file = try #require(file)
        return try #require(try load(file.text) as? [String: Any])
    }

    /// A scalar that a YAML 1.1 reader does not read as a string (`yes`, `null`, `1e3`): never
    /// `as? String`, so a value or key written unquoted by mistake fails the casts below.
    struct NotAString: Hashable {
        let tag: YAMLTag
        let text: String
    }

    /// The document as plain values, as a YAML 1.1 loader gives them: a mapping as
    /// `[AnyHashable: Any]`, a sequence as `[Any]`, a string scalar as `String`, other scalars as
    /// ``NotAString``.
    static func load(_ text: String) throws -> Any? {
        func scalar(_ scalar: YAMLNode.Scalar) -> AnyHashable {
            scalar.tag == .str ? AnyHashable(scalar.text) : AnyHashable(NotAString(tag: scalar.tag, text: scalar.text))
        }
        func value(_ node: YAMLNode) -> Any {
            switch node {
            case .scalar(let node): scalar(node).base
            case .sequence(let sequence): sequence.items.map(value)
            case .mapping(let mapping):
                [AnyHashable: Any](
                    uniqueKeysWithValues: mapping.pairs.map { (scalar($0.key.scalar!), value($0.value)) })
            }
        }
        return try YAMLReader.compose(text).map(value)
    }

    static func json(_ file: RenderedFile?) throws -> [String: Any] {
        let file = try #require(file)
        return try #require(try JSONSerialization.jsonObject(with: Data(file.contents)) as? [String: Any])
    }

    // MARK: NoCloud

    @Test("NoCloud: volume cidata, exactly the expected files and modes")
    func noCloudFiles() throws {
        let rendered = try Fixtures.render(try Self.spec(format: .noCloud))
        #expect(rendered.format == .noCloud)
        #expect(rendered.volumeID == "cidata")
        #expect(
            rendered.files.map(\.path) == [
                "bin/tool", "etc/app.conf", "meta-data", "network-config", "recontext/context.json", "user-data",
            ])
        #expect(rendered.files.map(\.mode) == [0o755, 0o640, 0o644, 0o644, 0o644, 0o600])
        #expect(rendered.file("user-data")?.text == "#cloud-config\nntp: {servers: [\"10.0.0.1\"]}\n")
        #expect(rendered.file("network-config")?.text == "version: 2\nethernets: {eth0: {dhcp4: true}}\n")
        #expect(rendered.file("etc/app.conf")?.text == "endpoint=http://10.0.0.5:9090\nrole=web\n")
        #expect(rendered.file("bin/tool")?.contents == Array("#!/bin/sh\necho hi\n".utf8))
        #expect(rendered.contentHash.count == 64)
    }

    @Test("NoCloud meta-data is YAML with instance-id, local-hostname and the host facts, no secrets")
    func noCloudMetaData() throws {
        let rendered = try Fixtures.render(try Self.spec(format: .noCloud))
        let meta = try Self.yaml(rendered.file("meta-data"))
        #expect(meta["instance-id"] as? String == "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab-hv1")
        #expect(meta["local-hostname"] as? String == "web-1")
        let recontext = try #require(meta["recontext"] as? [String: Any])
        let domain = try #require(recontext["domain"] as? [String: Any])
        #expect(domain["name"] as? String == "web1")
        #expect(domain["uuid"] as? String == "8f0c6a2e-1b3d-4c5e-9f70-0123456789ab")
        let host = try #require(recontext["host"] as? [String: Any])
        #expect(host["name"] as? String == "hv1")
        #expect(
            host["variables"] as? [String: String] == [
                "monitoring_endpoint": "http://10.0.0.5:9090", "ntp_server": "10.0.0.1", "zone": "rack-1",
            ]
        )
        #expect(
            recontext["variables"] as? [String: String]
                == [
                    "monitoring_endpoint": "http://10.0.0.5:9090", "ntp_server": "10.0.0.1", "zone": "rack-1",
                    "role": "web",
                ]
        )
        #expect(!rendered.file("meta-data")!.text.contains("host-secret-token"))
        #expect(!rendered.file("meta-data")!.text.contains("ss$word"))
    }

    @Test("NoCloud with the stable policy: instance-id is the domain UUID")
    func noCloudStable() throws {
        var spec = try Self.spec(format: .noCloud)
        spec.instanceID = nil
        let rendered = try ContextRenderer().render(
            spec: spec, host: Fixtures.host, domain: Fixtures.domain, defaultFormat: .configDrive)
        #expect(rendered.format == .noCloud)
        #expect(try Self.yaml(rendered.file("meta-data"))["instance-id"] as? String == Fixtures.domain.uuid)
        let perHost = try ContextRenderer().render(
            spec: spec,
            host: Fixtures.host,
            domain: Fixtures.domain,
            defaultFormat: .configDrive,
            defaultInstanceID: .perHost
        )
        #expect(try Self.yaml(perHost.file("meta-data"))["instance-id"] as? String == Fixtures.domain.uuid + "-hv1")
    }

    @Test("NoCloud without user data gets an empty cloud-config; vendor-data when given")
    func noCloudDefaults() throws {
        let rendered = try Fixtures.render(ContextSpec(vendorData: .text("#cloud-config\nruncmd: [true]\n")))
        #expect(rendered.files.map(\.path) == ["meta-data", "recontext/context.json", "user-data", "vendor-data"])
        #expect(rendered.file("user-data")?.text == ContextRenderer.emptyCloudConfig)
        #expect(try Self.load(ContextRenderer.emptyCloudConfig) as? [String: Any] != nil)
        #expect(rendered.file("vendor-data")?.text == "#cloud-config\nruncmd: [true]\n")
        #expect(rendered.file("vendor-data")?.mode == 0o600)
        // The hostname comes from the domain name.
        #expect(try Self.yaml(rendered.file("meta-data"))["local-hostname"] as? String == "web1")
    }

    static let awkwardValues = [
        "yes", "no", "on", "null", "~", "123", "0x1F", "1e3", "true", ": colon", "#hash", "- dash", "{braces}",
        "[list]",
        "multi\nline\n", "'single' \"double\"", "   spaces   ", "back\\slash", "tab\there", "café 😀", "", "*alias",
        "&anchor", "!tag", "%percent",
        "@at",
    ]

    @Test("NoCloud meta-data: every string reads back exactly", arguments: awkwardValues)
    func noCloudQuoting(value: String) throws {
        let host = HostFacts(name: "hv:1 #x", variables: ["v": value, "yes": value, "on": "x"])
        let domain = DomainIdentity(name: "null", uuid: Fixtures.domain.uuid)
        let rendered = try ContextRenderer().render(
            spec: ContextSpec(), host: host, domain: domain, defaultFormat: .noCloud)
        let meta = try Self.yaml(rendered.file("meta-data"))
        let recontext = try #require(meta["recontext"] as? [String: Any])
        #expect((recontext["variables"] as? [String: String]) == ["v": value, "yes": value, "on": "x"])
        #expect(((recontext["host"] as? [String: Any])?["name"] as? String) == "hv:1 #x")
        #expect(((recontext["domain"] as? [String: Any])?["name"] as? String) == "null")
        #expect(meta["local-hostname"] as? String == "null")
    }

    @Test(
        "the default hostname is made from the domain name",
        arguments: [
            ("web1", "web1"), ("web_1.example.com", "web-1.example.com"), ("-x-", "x"), ("___", "vm-8f0c6a2e"),
            ("a..b", "a.b"),
        ]
    )
    func defaultHostname(name: String, expected: String) throws {
        let domain = DomainIdentity(name: name, uuid: Fixtures.domain.uuid)
        let rendered = try ContextRenderer().render(
            spec: ContextSpec(), host: Fixtures.host, domain: domain, defaultFormat: .noCloud)
        #expect(try Self.yaml(rendered.file("meta-data"))["local-hostname"] as? String == expected)
        #expect(Validation.hostname(expected) == nil)
    }

    // MARK: ConfigDrive

    @Test("ConfigDrive: volume config-2, files, and meta_data.json field by field")
    func configDrive() throws {
        var spec = try Self.spec(format: .configDrive)
        spec.instanceID = .stable
        spec.networkConfig = .text(#"{"links": [], "networks": [], "services": []}"#)
        spec.vendorData = .text(##"{"cloud-init": "#cloud-config\n{}"}"##)
        let rendered = try Fixtures.render(spec)
        #expect(rendered.volumeID == "config-2")
        #expect(
            rendered.files.map(\.path) == [
                "bin/tool", "etc/app.conf", "openstack/latest/meta_data.json", "openstack/latest/network_data.json",
                "openstack/latest/user_data", "openstack/latest/vendor_data.json", "recontext/context.json",
            ]
        )
        #expect(rendered.file("openstack/latest/user_data")?.text == "#cloud-config\nntp: {servers: [\"10.0.0.1\"]}\n")
        #expect(rendered.file("openstack/latest/user_data")?.mode == 0o600)
        #expect(
            rendered.file("openstack/latest/network_data.json")?.text
                == #"{"links": [], "networks": [], "services": []}"#)
        let meta = try Self.json(rendered.file("openstack/latest/meta_data.json"))
        #expect(meta["uuid"] as? String == Fixtures.domain.uuid)
        #expect(meta["name"] as? String == "web1")
        #expect(meta["hostname"] as? String == "web-1")
        #expect(meta["availability_zone"] as? String == "rack-1")
        #expect((meta["launch_index"] as? NSNumber)?.intValue == 0)
        #expect(
            meta["meta"] as? [String: String]
                == [
                    "monitoring_endpoint": "http://10.0.0.5:9090", "ntp_server": "10.0.0.1", "zone": "rack-1",
                    "role": "web",
                ]
        )
        let recontext = try #require(meta["recontext"] as? [String: Any])
        #expect((recontext["host"] as? [String: Any])?["name"] as? String == "hv1")
        let text = rendered.file("openstack/latest/meta_data.json")!.text
        #expect(!text.contains("host-secret-token") && !text.contains("ss$word"))
    }

    @Test("ConfigDrive: no availability_zone without a zone, or when the zone is secret")
    func configDriveZone() throws {
        for host in [
            HostFacts(name: "hv1"), HostFacts(name: "hv1", variables: ["zone": "z"], secretVariables: ["zone"]),
        ] {
            let rendered = try Fixtures.render(ContextSpec(), host: host, format: .configDrive)
            let meta = try Self.json(rendered.file("openstack/latest/meta_data.json"))
            #expect(meta["availability_zone"] == nil)
            #expect(meta["meta"] as? [String: String] == [:])
        }
    }

    @Test("ConfigDrive: network config and vendor data must be JSON")
    func configDriveNeedsJSON() {
        for spec in [
            ContextSpec(networkConfig: .text("version: 2\n")), ContextSpec(vendorData: .text("#cloud-config\n")),
        ] {
            let error = Fixtures.expectContextError { _ = try Fixtures.render(spec, format: .configDrive) }
            #expect(error?.code == .invalidValue)
            #expect(error?.message.contains("JSON") == true)
        }
    }

    // MARK: Plain files

    @Test("plain files: default volume id RECONTEXT, only the files and the facts")
    func plainFiles() throws {
        let rendered = try Fixtures.render(try Self.spec(format: .files))
        #expect(rendered.volumeID == "RECONTEXT")
        #expect(rendered.files.map(\.path) == ["bin/tool", "etc/app.conf", "recontext/context.json"])
        let facts = try Self.json(rendered.file(ContextRenderer.contextRecordPath))
        #expect(facts["format"] as? String == "files")
        #expect(facts["hostname"] as? String == "web-1")
        #expect(facts["instance_id"] as? String == Fixtures.domain.uuid + "-hv1")
        #expect((facts["host"] as? [String: Any])?["name"] as? String == "hv1")
        #expect((facts["variables"] as? [String: String])?["monitoring_endpoint"] == "http://10.0.0.5:9090")
        #expect((facts["variables"] as? [String: String])?["api_token"] == nil)
        #expect((facts["variables"] as? [String: String])?["db_password"] == nil)
    }

    @Test("plain files: a volume id from the spec")
    func plainFilesVolumeID() throws {
        let rendered = try Fixtures.render(ContextSpec(format: .files, volumeID: "MY_DATA"))
        #expect(rendered.volumeID == "MY_DATA")
    }

    @Test("plain files refuse cloud-init documents", arguments: ["user-data", "network-config", "vendor-data"])
    func plainFilesRefuseDocuments(field: String) {
        var spec = ContextSpec(format: .files)
        switch field {
        case "user-data": spec.userData = .text("x")
        case "network-config": spec.networkConfig = .text("x")
        default: spec.vendorData = .text("x")
        }
        let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
        #expect(error?.code == .unsupportedByFormat)
        #expect(error?.field == field)
    }

    @Test("a volume id with another format is refused at render time too")
    func volumeIDNeedsFiles() {
        let error = Fixtures.expectContextError {
            _ = try Fixtures.render(ContextSpec(volumeID: "X"), format: .noCloud)
        }
        #expect(error?.code == .unsupportedByFormat)
        #expect(error?.field == "volume-id")
    }

    // MARK: Shared

    @Test("the host facts reach the guest in every format", arguments: ContextFormat.allCases)
    func hostFactsEverywhere(format: ContextFormat) throws {
        let rendered = try Fixtures.render(ContextSpec(format: format))
        let facts = try Self.json(rendered.file(ContextRenderer.contextRecordPath))
        #expect((facts["host"] as? [String: Any])?["name"] as? String == "hv1")
        #expect(
            ((facts["host"] as? [String: Any])?["variables"] as? [String: String])?["monitoring_endpoint"]
                == "http://10.0.0.5:9090")
        #expect((facts["domain"] as? [String: Any])?["uuid"] as? String == Fixtures.domain.uuid)
        let formatFile: String? =
            switch format {
            case .noCloud: "meta-data"
            case .configDrive: "openstack/latest/meta_data.json"
            case .openNebula: "context.sh"
            case .files: nil
            }
        if let formatFile {
            #expect(rendered.file(formatFile)?.text.contains("http://10.0.0.5:9090") == true)
        }
        #expect(rendered.volumeID == format.defaultVolumeID)
    }

    @Test(
        "a spec file may not take a path the format generates",
        arguments: [
            (ContextFormat.noCloud, "meta-data"), (.noCloud, "user-data"),
            (.configDrive, "openstack/latest/meta_data.json"),
            (.configDrive, "openstack"), (.openNebula, "context.sh"), (.openNebula, "context.sh/x"),
        ]
    )
    func generatedPathsAreReserved(format: ContextFormat, path: String) {
        let spec = ContextSpec(
            format: format,
            files: [FileSpec(path: "ok.txt", content: .text("x")), FileSpec(path: path, content: .text("x"))])
        let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
        #expect(error?.code == .duplicate)
        #expect(error?.field == "file[2].path")
    }

    @Test("another format's file names are fine")
    func otherFormatsNamesAreFree() throws {
        let spec = ContextSpec(
            format: .configDrive,
            files: [
                FileSpec(path: "meta-data", content: .text("x")), FileSpec(path: "context.sh", content: .text("y")),
            ]
        )
        let rendered = try Fixtures.render(spec)
        #expect(rendered.file("meta-data")?.text == "x")
    }

    @Test("a spec built in code is validated when rendered")
    func codeBuiltSpecIsValidated() {
        let cases: [(ContextSpec, ContextError.Code, String)] = [
            (ContextSpec(files: [FileSpec(path: "../x", content: .text(""))]), .unsafePath, "file[1].path"),
            (
                ContextSpec(files: [FileSpec(path: "x", content: .text(""), mode: 0o4755)]), .invalidValue,
                "file[1].mode"
            ),
            (
                ContextSpec(files: [FileSpec(path: "x", content: .text("")), FileSpec(path: "x", content: .text(""))]),
                .duplicate, "file[2].path"
            ),
            (ContextSpec(variables: [VariableSpec(name: "a b", value: "")]), .invalidValue, "var[1].name"),
            (ContextSpec(variables: [VariableSpec(name: "vm", value: "")]), .invalidValue, "var[1].name"),
            (
                ContextSpec(variables: [VariableSpec(name: "a", value: ""), VariableSpec(name: "a", value: "")]),
                .duplicate, "var[a]"
            ),
            (ContextSpec(hostname: "bad host"), .invalidValue, "hostname"),
            (ContextSpec(device: "SDZ"), .invalidValue, "device"),
            (ContextSpec(format: .files, volumeID: "way too long for an iso volume id"), .invalidValue, "volume-id"),
        ]
        for (spec, code, field) in cases {
            let error = Fixtures.expectContextError { _ = try Fixtures.render(spec) }
            #expect(error?.code == code, "\(String(describing: error))")
            #expect(error?.field == field, "\(String(describing: error))")
        }
    }

    @Test("host variables with bad or reserved names are refused")
    func badHostVariables() {
        for name in ["name", "bad name", "9lives"] {
            let error = Fixtures.expectContextError {
                _ = try Fixtures.render(ContextSpec(), host: HostFacts(name: "hv1", variables: [name: "x"]))
            }
            #expect(error?.field == "host.variables.\(name)")
        }
    }

    @Test("rendered output is bounded: per file and in total")
    func renderedLimits() {
        let big = String(repeating: "x", count: 600)
        let host = HostFacts(name: "hv1", variables: ["big": big])
        let tooBig = ContextSpec(files: [
            FileSpec(path: "a", content: .text("{{host.big}}{{host.big}}"), isTemplate: true)
        ])
        let error = Fixtures.expectContextError {
            _ = try Fixtures.render(tooBig, host: host, limits: MetadataLimits(maxFileBytes: 1000))
        }
        #expect(error?.code == .limitExceeded)
        #expect(error?.field == "file[a]")
        let tooMuch = ContextSpec(files: [
            FileSpec(path: "a", content: .text(big)), FileSpec(path: "b", content: .text(big)),
        ])
        let total = Fixtures.expectContextError {
            _ = try Fixtures.render(
                tooMuch, host: host, limits: MetadataLimits(maxFileBytes: 5000, maxTotalBytes: 1500))
        }
        #expect(total?.code == .limitExceeded)
        #expect(total?.message.contains("together") == true)
    }

    @Test("the generation record: JSON with sorted keys, outside the content hash")
    func generationRecord() throws {
        let rendered = try Fixtures.render(ContextSpec())
        let record = ContextRenderer.generationRecord(
            generation: 42, host: "hv2", contentHash: rendered.contentHash, domain: Fixtures.domain)
        #expect(record.path == "recontext/generation.json")
        #expect(record.mode == 0o644)
        #expect(rendered.file(record.path) == nil)
        let object = try Self.json(record)
        #expect((object["generation"] as? NSNumber)?.uint64Value == 42)
        #expect(object["host"] as? String == "hv2")
        #expect(object["content_hash"] as? String == rendered.contentHash)
        #expect(object["domain_uuid"] as? String == Fixtures.domain.uuid)
        let keys = record.text.split(separator: "\n").compactMap { $0.split(separator: "\"").dropFirst().first }
        #expect(keys == ["content_hash", "domain_uuid", "generation", "host"])
        let parsed = try #require(ContextRenderer.parseGenerationRecord(record.contents))
        #expect(parsed.generation == 42 && parsed.host == "hv2" && parsed.contentHash == rendered.contentHash)
        #expect(parsed.domainUUID == Fixtures.domain.uuid)
        // Adding the record to the files does not change how the content is hashed.
        #expect(RenderedContext.computeHash(volumeID: rendered.volumeID, files: rendered.files) == rendered.contentHash)
    }
}
