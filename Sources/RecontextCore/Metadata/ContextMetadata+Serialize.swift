import FoundationEssentials
internal import XML

// MARK: - Serializing

extension ContextMetadata {
    /// Writes a spec as the metadata element that ``parse(_:domain:limits:)`` reads back to an
    /// equal spec.
    ///
    /// The element has no namespace declaration, ready for `virsh metadata --set` (libvirt adds the
    /// namespace). Attributes that are `nil` (and `companion` when `false`) are left out; `managed` is always written. Content that
    /// XML cannot carry as text (bytes, invalid UTF-8, control characters) is written as base64.
    /// - Parameter spec: The spec.
    /// - Returns: The XML text.
    public static func serialize(_ spec: ContextSpec) -> String {
        var attributes: [(String, String)] = [("managed", spec.managed ? "yes" : "no")]
        if let format = spec.format { attributes.append(("format", format.rawValue)) }
        if let policy = spec.instanceID { attributes.append(("instance-id", policy.rawValue)) }
        if let hostname = spec.hostname { attributes.append(("hostname", hostname)) }
        if let device = spec.device { attributes.append(("device", device)) }
        if let volumeID = spec.volumeID { attributes.append(("volume-id", volumeID)) }
        if spec.addsGuestChannel { attributes.append(("channel", "add")) }
        if spec.companion { attributes.append(("companion", "yes")) }

        var out = "<context" + attributeText(attributes) + ">\n"
        for variable in spec.variables {
            var attrs = [("name", variable.name)]
            if variable.secret { attrs.append(("secret", "yes")) }
            out += "  " + element("var", attrs, content: .text(variable.value)) + "\n"
        }
        for file in spec.files {
            var attrs = [("path", file.path)]
            if let mode = file.mode { attrs.append(("mode", Validation.formatMode(mode))) }
            if file.isTemplate { attrs.append(("template", "yes")) }
            out += "  " + element("file", attrs, content: file.content) + "\n"
        }
        for (name, document) in [
            ("user-data", spec.userData), ("network-config", spec.networkConfig), ("vendor-data", spec.vendorData),
        ] {
            guard let document else { continue }
            let attrs = document.isTemplate ? [("template", "yes")] : []
            out += "  " + element(name, attrs, content: document.content) + "\n"
        }
        out += "</context>"
        return out
    }

    static func attributeText(_ attributes: [(String, String)]) -> String {
        attributes.map { " \($0.0)=\"\(XMLEscaping.attribute($0.1))\"" }.joined()
    }

    static func element(_ name: String, _ attributes: [(String, String)], content: FileContent) -> String {
        var attributes = attributes
        let body: String
        switch content {
        case .text(let text) where XMLEscaping.isRepresentable(text):
            body = XMLEscaping.text(text)
        default:
            attributes.append(("encoding", "base64"))
            body = Data(content.bytes).base64EncodedString()
        }
        return "<\(name)\(attributeText(attributes))>\(body)</\(name)>"
    }
}
