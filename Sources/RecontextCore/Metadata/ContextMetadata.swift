import FoundationEssentials
internal import XML

// MARK: - ContextMetadata

/// The per-VM context data in a libvirt domain's `<metadata>`: schema, parser and serializer.
///
/// The data lives in the domain XML under the namespace ``namespaceURI``, so it travels with the VM
/// when it migrates. Set it with `virsh metadata` (the XML given to `--set` needs no namespace;
/// libvirt adds it, with the `--key` as prefix):
///
/// ```sh
/// virsh metadata web1 --uri urn:recontextd:context:1 --key recontext --live --config --set '
/// <context managed="yes" format="nocloud" instance-id="stable" hostname="web1">
///   <var name="role">web</var>
///   <var name="db_password" secret="yes">s3cr3t</var>
///   <file path="etc/app.conf" mode="0644" template="yes">endpoint={{host.monitoring_endpoint}}
/// </file>
///   <file path="bin/tool" mode="0755" encoding="base64">IyEvYmluL3NoCmVjaG8gaGkK</file>
///   <user-data template="yes">#cloud-config
/// ntp: {servers: ["{{host.ntp_server}}"]}
/// </user-data>
///   <network-config>version: 2
/// ethernets: {eth0: {dhcp4: true}}
/// </network-config>
/// </context>'
/// ```
///
/// libvirt hands it back re-serialized, e.g. `<recontext:context xmlns:recontext="urn:recontextd:context:1" ...>`
/// with children prefixed or not; elements are matched by local name, in this namespace or none.
///
/// ## Schema
///
/// `<context>` (the root), attributes all optional:
/// - `managed`: `yes` (default) or `no`. Setting this metadata is the opt-in; `no` keeps the data
///   but recontextd leaves the domain alone.
/// - `format`: `nocloud`, `configdrive`, `opennebula` or `files`; default: the daemon's
///   `context.default-format`.
/// - `instance-id`: `stable` (the domain UUID) or `per-host` (UUID and host name, so cloud-init
///   re-runs its per-instance modules on each new host); default: the daemon's `context.instance-id`.
/// - `hostname`: the guest's hostname (letters, digits, `-`, dot-separated labels); default: the
///   domain name with other characters replaced by `-`.
/// - `device`: the target dev of the context CD-ROM, e.g. `sdz`; default: the daemon's choice.
/// - `volume-id`: the volume id, 1 to 32 of `[A-Za-z0-9_.-]`; only with `format="files"`
///   (default `RECONTEXT`).
/// - `channel`: `add` makes recontextd add the host-guest channel's port to the domain (live and
///   persistent); `use` (the default) uses it when the domain has it.
/// - `companion`: `yes` puts the guest companion's packages into the image under
///   `recontext/guest/` (see ``CompanionPackages``); default `no`.
///
/// Children, in any order:
/// - `<var name="N" [secret="yes"] [encoding="base64"]>VALUE</var>`, any number up to
///   ``MetadataLimits/maxVariables``. `N` matches `[A-Za-z_][A-Za-z0-9_-]*`; `name`, `uuid`,
///   `hostname`, `instance_id`, `host`, `vm` and `var` are reserved. The value is the element's text,
///   exactly (whitespace kept). Secret values never reach logs or non-secret files.
/// - `<file path="P" [mode="0644"] [template="yes"] [encoding="base64"]>CONTENT</file>`, up to
///   ``MetadataLimits/maxFiles``. `P` is relative, `/`-separated, without empty, `.` or `..`
///   components, backslashes or control characters, and not under `recontext/`. `mode` is octal,
///   at most `0777`. With `template="yes"` the content is a Mustache template (see ``ContextRenderer``).
/// - `<user-data>`, `<network-config>`, `<vendor-data>`, at most one each, with optional `template`
///   and `encoding` attributes: the cloud-init documents.
///
/// Content is taken verbatim: a `#cloud-config` header must start right after the tag. Use
/// `<![CDATA[...]]>` or `encoding="base64"` for content with many `<` and `&`, or with characters
/// XML cannot carry. Booleans accept `yes`/`no`, `true`/`false`, `1`/`0`.
///
/// Anything else is an error naming the domain and the field: unknown elements or attributes, a
/// DOCTYPE or entity declaration, bad values, duplicate names or paths, unsafe paths, and anything
/// over a ``MetadataLimits`` bound.
public enum ContextMetadata {
    /// The namespace of the context metadata element.
    public static let namespaceURI = "urn:recontextd:context:1"
    /// The prefix (`virsh metadata --key`) recontextd uses when it writes the element.
    public static let defaultPrefix = "recontext"

    /// The root element's local name.
    static let rootName = "context"
    static let rootAttributes = [
        "managed", "format", "instance-id", "hostname", "device", "volume-id", "channel", "companion",
    ]
    static let varAttributes = ["name", "secret", "encoding"]
    static let fileAttributes = ["path", "mode", "template", "encoding"]
    static let documentAttributes = ["template", "encoding"]
    static let documentElements = ["user-data", "network-config", "vendor-data"]

    /// Parses a domain's context metadata.
    /// - Parameters:
    ///   - xml: The metadata element as libvirt returns it (`virDomainGetMetadata`).
    ///   - domain: The domain, named in errors.
    ///   - limits: Size, count and depth bounds.
    /// - Returns: The validated spec.
    /// - Throws: ``ContextError`` naming the domain and the field.
    public static func parse(_ xml: String, domain: DomainIdentity, limits: MetadataLimits) throws(ContextError)
        -> ContextSpec
    {
        let caps = XMLTree.Caps(
            maxBytes: limits.maxMetadataBytes,
            maxDepth: limits.maxDepth,
            maxElements: limits.maxFiles + limits.maxVariables + 16
        )
        let root: XMLElement
        switch XMLTree.parse(xml, caps: caps) {
        case .success(let element): root = element
        case .failure(let failure): throw ContextError(failure.code, domain: domain.name, field: "", failure.message)
        }
        var reader = SpecReader(domain: domain.name, limits: limits)
        return try reader.read(root)
    }

    /// Parses metadata given as bytes, refusing bytes that are not valid UTF-8.
    /// - Parameters:
    ///   - utf8: The metadata element's bytes.
    ///   - domain: The domain, named in errors.
    ///   - limits: Size, count and depth bounds.
    /// - Returns: The validated spec.
    /// - Throws: ``ContextError``; ``ContextError/Code/malformedXML`` for invalid UTF-8.
    public static func parse(utf8: [UInt8], domain: DomainIdentity, limits: MetadataLimits) throws(ContextError)
        -> ContextSpec
    {
        guard utf8.count <= limits.maxMetadataBytes else {
            throw ContextError(
                .limitExceeded,
                domain: domain.name,
                field: "",
                "metadata is \(utf8.count) bytes, more than the limit of \(limits.maxMetadataBytes)"
            )
        }
        let text = String(decoding: utf8, as: UTF8.self)
        guard text.utf8.elementsEqual(utf8) else {
            throw ContextError(.malformedXML, domain: domain.name, field: "", "metadata is not valid UTF-8")
        }
        return try parse(text, domain: domain, limits: limits)
    }
}
