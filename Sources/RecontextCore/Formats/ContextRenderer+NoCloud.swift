import YAML

// MARK: - NoCloud

extension ContextRenderer {
    /// The user data written when a NoCloud spec gives none: cloud-init wants `user-data` to exist.
    public static let emptyCloudConfig = "#cloud-config\n{}\n"

    /// `meta-data`, `user-data`, and `network-config` / `vendor-data` when given.
    func renderNoCloud(spec: ContextSpec, facts: ResolvedFacts, into output: inout OutputFiles) throws(ContextError) {
        try output.addGenerated(
            RenderedFile(path: "meta-data", contents: Array(noCloudMetaData(facts).utf8), mode: 0o644))
        var userData = Array(Self.emptyCloudConfig.utf8)
        if let document = spec.userData {
            userData = try output.render(document.content, isTemplate: document.isTemplate, field: "user-data")
        }
        try output.addGenerated(RenderedFile(path: "user-data", contents: userData, mode: 0o600))
        if let document = spec.networkConfig {
            let bytes = try output.render(document.content, isTemplate: document.isTemplate, field: "network-config")
            try output.addGenerated(RenderedFile(path: "network-config", contents: bytes, mode: 0o644))
        }
        if let document = spec.vendorData {
            let bytes = try output.render(document.content, isTemplate: document.isTemplate, field: "vendor-data")
            try output.addGenerated(RenderedFile(path: "vendor-data", contents: bytes, mode: 0o600))
        }
    }

    /// Plain words that YAML 1.1 reads as booleans or null.
    static let yamlSpecialWords: Set<String> = ["y", "yes", "n", "no", "true", "false", "on", "off", "null"]

    /// The YAML of `meta-data`: every string double-quoted, keys sorted.
    func noCloudMetaData(_ facts: ResolvedFacts) -> String {
        func string(_ value: String) -> YAMLNode {
            .scalar(YAMLNode.Scalar(value, style: .doubleQuoted, tag: .str))
        }
        func key(_ value: String) -> YAMLNode {
            .scalar(YAMLNode.Scalar(value, style: .plain, tag: .str))
        }
        // Variable names are plain keys unless YAML 1.1 would read them as a boolean or null.
        func variableKey(_ name: String) -> YAMLNode {
            Self.yamlSpecialWords.contains(name.lowercased()) ? string(name) : key(name)
        }
        func map(_ pairs: [(YAMLNode, YAMLNode)]) -> YAMLNode {
            .mapping(YAMLNode.Mapping(pairs))
        }
        func map(_ values: [String: String]) -> YAMLNode {
            map(values.keys.sorted().map { (variableKey($0), string(values[$0]!)) })
        }
        let recontext = map([
            (
                key("domain"),
                map([(key("name"), string(facts.domain.name)), (key("uuid"), string(facts.domain.uuid))])
            ),
            (
                key("host"),
                map([(key("name"), string(facts.host.name)), (key("variables"), map(facts.publicHostVariables))])
            ),
            (key("variables"), map(facts.publicVariables)),
        ])
        let root = map([
            (key("instance-id"), string(facts.instanceID)),
            (key("local-hostname"), string(facts.hostname)),
            (key("recontext"), recontext),
        ])
        // Emitting a tree of string scalars cannot fail; the fallback keeps the two keys cloud-init needs.
        return (try? YAMLEmitter.emit(root))
            ?? "instance-id: \"\(facts.instanceID)\"\nlocal-hostname: \"\(facts.hostname)\"\n"
    }
}
