import FoundationEssentials

// MARK: - ContextRenderer

/// Renders a VM's ``ContextSpec`` and this host's ``HostFacts`` into the files of a context image.
///
/// Pure and deterministic: the same inputs always give the same bytes and the same
/// ``RenderedContext/contentHash`` (keys are sorted everywhere). The generation record is added
/// separately (``generationRecord(generation:host:contentHash:domain:)``) so that it never changes
/// the hash.
///
/// ## What each format contains
///
/// Every image carries `recontext/context.json` (mode 0644): `domain` {`name`, `uuid`}, `format`,
/// `host` {`name`, `variables`}, `hostname`, `instance_id` and `variables` (host variables overridden
/// by VM variables), secrets left out. Every image also carries the spec's `files`, with templates
/// rendered, at their paths (default mode 0644), and, when the spec says `companion="yes"`, the
/// guest companion's packages under `recontext/guest/` (``CompanionPackages``). Then, per format:
///
/// - ``ContextFormat/noCloud`` (volume `cidata`):
///   - `meta-data` (0644), YAML: `instance-id`, `local-hostname`, and `recontext` with `domain`,
///     `host` and `variables` as in `context.json` (cloud-init exposes it as `ds.meta_data.recontext`).
///   - `user-data` (0600): the spec's user data, or `#cloud-config` + `{}` when none is given
///     (cloud-init wants the file to exist).
///   - `network-config` (0644) and `vendor-data` (0600) when given.
/// - ``ContextFormat/configDrive`` (volume `config-2`):
///   - `openstack/latest/meta_data.json` (0644): `uuid` (the instance id, which cloud-init takes as
///     its instance-id), `name` (the domain name), `hostname`, `launch_index` 0, `availability_zone`
///     (the host variable `zone`, when set and not secret), `meta` (the merged non-secret variables,
///     string to string), and `recontext` as in NoCloud.
///   - `openstack/latest/user_data` (0600) when given.
///   - `openstack/latest/network_data.json` (0644) and `openstack/latest/vendor_data.json` (0600)
///     when given; both must be JSON.
/// - ``ContextFormat/openNebula`` (volume `CONTEXT`):
///   - `context.sh` (0600 when it holds a secret or user data, else 0644): `KEY='value'` lines sorted by key, keys
///     upper-cased with characters outside `[A-Z0-9_]` replaced by `_`: host variables, then VM
///     variables (overriding host ones), then `HOSTNAME`, `SET_HOSTNAME`, `RECONTEXT_HOST`,
///     `RECONTEXT_DOMAIN`, `RECONTEXT_DOMAIN_UUID`, `RECONTEXT_INSTANCE_ID` and
///     `RECONTEXT_FILES_SHA256` (which win over variables). The last is the content hash of every
///     other file of the image: OpenNebula's guest tools re-run only when `context.sh` changes, so
///     a change to any file changes `context.sh`. User data goes in `USER_DATA` (base64) with `USERDATA_ENCODING='base64'`, as
///     cloud-init's OpenNebula datasource reads it. The VM's secret variables are included (the
///     guest needs them); a secret host variable (`host.secret-variables`) only when one of the VM's
///     templates references it (`{{host.NAME}}` or `{{var.NAME}}`, also in a section), as in the
///     other formats, where a host secret reaches a guest only through the VM's own templates.
///   - Network config and vendor data are refused (``ContextError/Code/unsupportedByFormat``).
/// - ``ContextFormat/files`` (volume ``ContextSpec/volumeID`` or `RECONTEXT`): only the common
///   files; user data, network config and vendor data are refused.
///
/// ## Templates
///
/// Files and documents marked as templates are rendered with Mustache as plain text (no HTML
/// escaping), by recontextd's own renderer (``TemplateEngine``: the spec's tags, text values only, no
/// partials). A template sees `host.name`, `host.<var>`, `vm.name`, `vm.uuid`, `vm.hostname`,
/// `vm.instance_id`, `vm.<var>` and `var.<var>` (host variables overridden by VM ones), secrets
/// included. A reference to anything undefined is an error naming the variable, the file and the
/// domain; `{{#host.proxy}}...{{/host.proxy}}` tests for presence without error.
public struct ContextRenderer: Sendable {
    /// The bounds applied to the spec and to the rendered files.
    public var limits: MetadataLimits

    /// Where every image carries the non-secret facts.
    public static let contextRecordPath = "recontext/context.json"
    /// Where every image carries the generation record.
    public static let generationRecordPath = "recontext/generation.json"

    /// Creates a renderer.
    /// - Parameter limits: The bounds applied to the spec and the rendered files.
    public init(limits: MetadataLimits = .default) {
        self.limits = limits
    }

    /// Renders a spec for a domain on this host.
    /// - Parameters:
    ///   - spec: The VM's desired data.
    ///   - host: This host's facts.
    ///   - domain: The domain.
    ///   - defaultFormat: The format when the spec names none (`context.default-format`).
    ///   - defaultInstanceID: The instance-id policy when the spec names none (`context.instance-id`).
    ///   - companion: The guest companion's packages, added under `recontext/guest/` when the spec
    ///     says `companion="yes"`.
    /// - Returns: The files, volume id and content hash.
    /// - Throws: ``ContextError`` naming the domain and the field: invalid spec values, template
    ///   errors, parts the format cannot carry, collisions, limits, companion packages asked for
    ///   but unavailable.
    public func render(
        spec: ContextSpec,
        host: HostFacts,
        domain: DomainIdentity,
        defaultFormat: ContextFormat,
        defaultInstanceID: InstanceIDPolicy = .stable,
        companion: CompanionPackages = .notRead
    ) throws(ContextError) -> RenderedContext {
        let facts = try ResolvedFacts(
            spec: spec,
            host: host,
            domain: domain,
            format: spec.format ?? defaultFormat,
            policy: spec.instanceID ?? defaultInstanceID,
            limits: limits
        )
        var output = OutputFiles(facts: facts, limits: limits)
        guard spec.files.count <= limits.maxFiles else {
            throw facts.error(.limitExceeded, "file[\(limits.maxFiles + 1)]", "more than \(limits.maxFiles) files")
        }

        for (index, file) in spec.files.enumerated() {
            let field = "file[\(index + 1)]"
            if let (code, problem) = Validation.path(file.path, limits: limits) {
                throw facts.error(code, "\(field).path", problem)
            }
            if let mode = file.mode, mode > 0o777 {
                throw facts.error(
                    .invalidValue, "\(field).mode", "mode \(Validation.formatMode(mode)) is more than 0777")
            }
            let bytes = try output.render(file.content, isTemplate: file.isTemplate, field: "file[\(file.path)]")
            try output.addSpecFile(
                RenderedFile(path: file.path, contents: bytes, mode: file.mode ?? FileSpec.defaultMode),
                field: "\(field).path"
            )
        }

        try output.addGenerated(
            RenderedFile(path: Self.contextRecordPath, contents: facts.contextRecord(), mode: 0o644))
        switch facts.format {
        case .noCloud: try renderNoCloud(spec: spec, facts: facts, into: &output)
        case .configDrive: try renderConfigDrive(spec: spec, facts: facts, into: &output)
        case .openNebula: try renderOpenNebula(spec: spec, facts: facts, into: &output)
        case .files: try renderFiles(spec: spec, facts: facts, into: &output)
        }
        if spec.companion {
            for file in try companion.files(forDomain: domain.name) { try output.addGenerated(file) }
        }
        return try output.finish(volumeID: facts.volumeID)
    }

    /// The generation record added to every image: `recontext/generation.json`, mode 0644.
    ///
    /// JSON with sorted keys: `{"content_hash": ..., "domain_uuid": ..., "generation": N, "host": ...}`.
    /// It tells the guest that a new image arrived and lets it tell duplicates apart; it is not part
    /// of ``RenderedContext/contentHash``.
    /// - Parameters:
    ///   - generation: The generation number.
    ///   - host: The host's name.
    ///   - contentHash: The image's content hash.
    ///   - domain: The domain.
    /// - Returns: The file.
    public static func generationRecord(generation: UInt64, host: String, contentHash: String, domain: DomainIdentity)
        -> RenderedFile
    {
        let object: JSONValue = .object([
            "content_hash": .string(contentHash),
            "domain_uuid": .string(domain.uuid),
            "generation": .unsigned(generation),
            "host": .string(host),
        ])
        return RenderedFile(path: generationRecordPath, contents: JSONOutput.encode(object), mode: 0o644)
    }

    /// Reads a generation record back (for tests, `status` and guests written in Swift).
    /// - Parameter file: The file's bytes.
    /// - Returns: generation, host, content hash and domain UUID, or `nil` if the bytes are not a record.
    public static func parseGenerationRecord(_ contents: [UInt8]) -> (
        generation: UInt64, host: String, contentHash: String, domainUUID: String
    )? {
        guard let object = JSONValue.parse(contents),
            let generation = object["generation"]?.unsignedValue,
            let host = object["host"]?.stringValue,
            let hash = object["content_hash"]?.stringValue,
            let uuid = object["domain_uuid"]?.stringValue
        else { return nil }
        return (generation, host, hash, uuid)
    }
}

// MARK: - OutputFiles

/// The files of one image as they are assembled, with collision and size checks.
struct OutputFiles {
    let facts: ResolvedFacts
    let limits: MetadataLimits
    var files: [String: RenderedFile] = [:]
    /// For spec files: the field to name when a generated file collides with one.
    var specFields: [String: String] = [:]
    /// Host variables that the templates rendered so far reference (see ``render(_:isTemplate:field:)``).
    var referencedHostVariables: Set<String> = []

    init(facts: ResolvedFacts, limits: MetadataLimits) {
        self.facts = facts
        self.limits = limits
    }

    /// Renders a file or document (``ResolvedFacts/render(_:isTemplate:field:)``) and notes the host
    /// variables its template references: a host secret reaches the OpenNebula variables only then.
    mutating func render(_ content: FileContent, isTemplate: Bool, field: String) throws(ContextError) -> [UInt8] {
        let (bytes, hostVariables) = try facts.render(content, isTemplate: isTemplate, field: field)
        referencedHostVariables.formUnion(hostVariables)
        return bytes
    }

    mutating func addSpecFile(_ file: RenderedFile, field: String) throws(ContextError) {
        guard files[file.path] == nil else {
            throw facts.error(.duplicate, field, "path \(Validation.quote(file.path)) is given twice")
        }
        files[file.path] = file
        specFields[file.path] = field
    }

    mutating func addGenerated(_ file: RenderedFile) throws(ContextError) {
        guard file.contents.count <= limits.maxFileBytes else {
            throw facts.error(
                .limitExceeded,
                file.path,
                "generated file is \(file.contents.count) bytes, more than the limit of \(limits.maxFileBytes)"
            )
        }
        if let field = specFields[file.path] {
            throw facts.error(
                .duplicate, field, "path \(Validation.quote(file.path)) is generated by the \(facts.format) format")
        }
        files[file.path] = file
    }

    func finish(volumeID: String) throws(ContextError) -> RenderedContext {
        var directories: [String: String] = [:]
        for path in files.keys {
            var prefix = ""
            for component in path.split(separator: "/").dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                directories[prefix] = path
            }
        }
        for path in files.keys.sorted() {
            if let other = directories[path] {
                let field = specFields[path] ?? specFields[other] ?? path
                throw facts.error(
                    .duplicate,
                    field,
                    "path \(Validation.quote(path)) is a file but also the directory of \(Validation.quote(other))"
                )
            }
        }
        let total = files.values.reduce(0) { $0 + $1.contents.count }
        guard total <= limits.maxTotalBytes else {
            throw facts.error(
                .limitExceeded, "",
                "the image's files are \(total) bytes together, more than the limit of \(limits.maxTotalBytes)")
        }
        return RenderedContext(format: facts.format, volumeID: volumeID, files: Array(files.values))
    }
}
