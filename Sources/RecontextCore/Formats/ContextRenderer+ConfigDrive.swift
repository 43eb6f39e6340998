import FoundationEssentials

// MARK: - ConfigDrive

extension ContextRenderer {
    /// `openstack/latest/meta_data.json`, and `user_data`, `network_data.json`, `vendor_data.json`
    /// when given.
    func renderConfigDrive(spec: ContextSpec, facts: ResolvedFacts, into output: inout OutputFiles) throws(ContextError)
    {
        var meta: [String: JSONValue] = [
            "uuid": .string(facts.instanceID),
            "name": .string(facts.domain.name),
            "hostname": .string(facts.hostname),
            "launch_index": .integer(0),
            "meta": .strings(facts.publicVariables),
            "recontext": .object(facts.recontextObject),
        ]
        if let zone = facts.host.variables["zone"], !facts.host.secretVariables.contains("zone") {
            meta["availability_zone"] = .string(zone)
        }
        try output.addGenerated(
            RenderedFile(
                path: "openstack/latest/meta_data.json", contents: JSONOutput.encode(.object(meta)), mode: 0o644))
        if let document = spec.userData {
            let bytes = try output.render(document.content, isTemplate: document.isTemplate, field: "user-data")
            try output.addGenerated(RenderedFile(path: "openstack/latest/user_data", contents: bytes, mode: 0o600))
        }
        if let document = spec.networkConfig {
            let bytes = try output.render(document.content, isTemplate: document.isTemplate, field: "network-config")
            try requireJSON(bytes, facts: facts, field: "network-config", file: "network_data.json")
            try output.addGenerated(
                RenderedFile(path: "openstack/latest/network_data.json", contents: bytes, mode: 0o644))
        }
        if let document = spec.vendorData {
            let bytes = try output.render(document.content, isTemplate: document.isTemplate, field: "vendor-data")
            try requireJSON(bytes, facts: facts, field: "vendor-data", file: "vendor_data.json")
            try output.addGenerated(
                RenderedFile(path: "openstack/latest/vendor_data.json", contents: bytes, mode: 0o600))
        }
    }

    func requireJSON(_ bytes: [UInt8], facts: ResolvedFacts, field: String, file: String) throws(ContextError) {
        guard JSONValue.parse(bytes) != nil else {
            throw facts.error(
                .invalidValue, field, "the configdrive format needs \(file) to be JSON, and this is not valid JSON")
        }
    }
}
