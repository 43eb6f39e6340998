// MARK: - Plain files

extension ContextRenderer {
    /// Nothing beyond the common files; cloud-init documents are refused.
    func renderFiles(spec: ContextSpec, facts: ResolvedFacts, into output: inout OutputFiles) throws(ContextError) {
        for (field, document) in [
            ("user-data", spec.userData), ("network-config", spec.networkConfig), ("vendor-data", spec.vendorData),
        ]
        where document != nil {
            throw facts.error(
                .unsupportedByFormat,
                field,
                "the files format has no \(field); add it as a <file>, or use nocloud or configdrive"
            )
        }
    }
}
