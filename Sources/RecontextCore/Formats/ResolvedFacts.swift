import FoundationEssentials

// MARK: - ResolvedFacts

/// A spec, host facts and domain checked and combined: the values every format renders from.
struct ResolvedFacts {
    let format: ContextFormat
    let domain: DomainIdentity
    let host: HostFacts
    let instanceID: String
    let hostname: String
    let volumeID: String
    /// VM variables by name.
    let vmVariables: [String: String]
    /// Names of secret VM variables.
    let vmSecrets: Set<String>
    /// Host variables overridden by VM variables.
    let merged: [String: String]
    /// Names in ``merged`` that are secret (secret on either side).
    let mergedSecrets: Set<String>
    let limits: MetadataLimits

    init(
        spec: ContextSpec,
        host: HostFacts,
        domain: DomainIdentity,
        format: ContextFormat,
        policy: InstanceIDPolicy,
        limits: MetadataLimits
    ) throws(ContextError) {
        func fail(_ code: ContextError.Code, _ field: String, _ message: String) -> ContextError {
            ContextError(code, domain: domain.name, field: field, message)
        }
        self.format = format
        self.domain = domain
        self.host = host
        self.limits = limits

        for name in host.variables.keys.sorted() {
            if let problem = Validation.variableName(name, maxLength: limits.maxNameLength) {
                throw fail(.invalidValue, "host.variables.\(name)", problem)
            }
            if Validation.reservedHostVariableNames.contains(name) {
                throw fail(
                    .invalidValue, "host.variables.\(name)", "host variable name \(Validation.quote(name)) is reserved")
            }
        }

        guard spec.variables.count <= limits.maxVariables else {
            throw fail(.limitExceeded, "var[\(limits.maxVariables + 1)]", "more than \(limits.maxVariables) variables")
        }
        var vmVariables: [String: String] = [:]
        var vmSecrets: Set<String> = []
        for (index, variable) in spec.variables.enumerated() {
            if let problem = Validation.variableName(variable.name, maxLength: limits.maxNameLength) {
                throw fail(.invalidValue, "var[\(index + 1)].name", problem)
            }
            if Validation.reservedVMVariableNames.contains(variable.name) {
                throw fail(
                    .invalidValue, "var[\(index + 1)].name",
                    "variable name \(Validation.quote(variable.name)) is reserved")
            }
            guard vmVariables[variable.name] == nil else {
                throw fail(.duplicate, "var[\(variable.name)]", "variable is defined twice")
            }
            guard variable.value.utf8.count <= limits.maxFileBytes else {
                throw fail(.limitExceeded, "var[\(variable.name)]", "value is more than \(limits.maxFileBytes) bytes")
            }
            vmVariables[variable.name] = variable.value
            if variable.secret { vmSecrets.insert(variable.name) }
        }
        self.vmVariables = vmVariables
        self.vmSecrets = vmSecrets
        self.merged = host.variables.merging(vmVariables) { _, vm in vm }
        self.mergedSecrets = Set(merged.keys.filter { vmSecrets.contains($0) || host.secretVariables.contains($0) })

        if let hostname = spec.hostname {
            if let problem = Validation.hostname(hostname) { throw fail(.invalidValue, "hostname", problem) }
            self.hostname = hostname
        } else {
            self.hostname = Validation.hostname(fromDomain: domain)
        }
        if let device = spec.device, let problem = Validation.deviceTarget(device) {
            throw fail(.invalidValue, "device", problem)
        }
        if let volumeID = spec.volumeID {
            guard format == .files else {
                throw fail(
                    .unsupportedByFormat, "volume-id",
                    "volume-id is only allowed with format \"files\", not \(format.rawValue)")
            }
            if let problem = Validation.volumeID(volumeID) { throw fail(.invalidValue, "volume-id", problem) }
            self.volumeID = volumeID
        } else {
            self.volumeID = format.defaultVolumeID
        }
        self.instanceID = policy.instanceID(domain: domain, host: host.name)
    }

    func error(_ code: ContextError.Code, _ field: String, _ message: String) -> ContextError {
        ContextError(code, domain: domain.name, field: field, message)
    }

    // MARK: Values

    /// Host variables that are not secret.
    var publicHostVariables: [String: String] {
        host.variables.filter { !host.secretVariables.contains($0.key) }
    }

    /// Merged variables that are not secret.
    var publicVariables: [String: String] {
        merged.filter { !mergedSecrets.contains($0.key) }
    }

    /// What templates see.
    var templateValues: TemplateValues {
        var hostValues = host.variables
        hostValues["name"] = host.name
        var vmValues = vmVariables
        vmValues["name"] = domain.name
        vmValues["uuid"] = domain.uuid
        vmValues["hostname"] = hostname
        vmValues["instance_id"] = instanceID
        return TemplateValues(host: hostValues, vm: vmValues, merged: merged)
    }

    /// The `recontext` object shared by `meta-data`, `meta_data.json` and `context.json`.
    var recontextObject: [String: JSONValue] {
        [
            "domain": .strings(["name": domain.name, "uuid": domain.uuid]),
            "host": .object(["name": .string(host.name), "variables": .strings(publicHostVariables)]),
            "variables": .strings(publicVariables),
        ]
    }

    /// `recontext/context.json`.
    func contextRecord() -> [UInt8] {
        var object = recontextObject
        object["format"] = .string(format.rawValue)
        object["hostname"] = .string(hostname)
        object["instance_id"] = .string(instanceID)
        return JSONOutput.encode(.object(object))
    }

    /// The bytes of a file or document: rendered when a template, size-checked; and the host
    /// variables the template references (none when it is not a template).
    func render(_ content: FileContent, isTemplate: Bool, field: String) throws(ContextError) -> (
        bytes: [UInt8], hostVariables: Set<String>
    ) {
        let bytes: [UInt8]
        var hostVariables: Set<String> = []
        if isTemplate {
            let source: String
            switch content {
            case .text(let text): source = text
            case .bytes(let raw):
                let text = String(decoding: raw, as: UTF8.self)
                guard text.utf8.elementsEqual(raw) else {
                    throw error(.invalidValue, field, "a template must be UTF-8 text")
                }
                source = text
            }
            let rendering = try TemplateEngine.render(
                source, values: templateValues, domain: domain.name, field: field)
            bytes = Array(rendering.text.utf8)
            hostVariables = rendering.hostVariables
        } else {
            bytes = content.bytes
        }
        guard bytes.count <= limits.maxFileBytes else {
            throw error(
                .limitExceeded, field, "content is \(bytes.count) bytes, more than the limit of \(limits.maxFileBytes)")
        }
        return (bytes, hostVariables)
    }
}
