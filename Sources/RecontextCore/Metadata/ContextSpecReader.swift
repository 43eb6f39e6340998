import FoundationEssentials
internal import XML

// MARK: - SpecReader

/// Turns the element tree into a ``ContextSpec``, checking every value.
struct SpecReader {
    let domain: String
    let limits: MetadataLimits
    var totalBytes = 0

    init(domain: String, limits: MetadataLimits) {
        self.domain = domain
        self.limits = limits
    }

    func error(_ code: ContextError.Code, _ field: String, _ message: String) -> ContextError {
        ContextError(code, domain: domain, field: field, message)
    }

    func checkNamespace(_ element: XMLElement, field: String) throws(ContextError) {
        guard element.namespaceURI.isEmpty || element.namespaceURI == ContextMetadata.namespaceURI else {
            throw error(
                .unknownElement,
                field,
                "element <\(element.name)> is in namespace \(Validation.quote(element.namespaceURI)), expected \(ContextMetadata.namespaceURI) or none"
            )
        }
    }

    func checkAttributes(_ element: XMLElement, allowed: [String], field: (String) -> String) throws(ContextError) {
        for name in element.attributes.map(\.qualifiedName).sorted() where !allowed.contains(name) {
            throw error(
                .unknownAttribute,
                field(name),
                "unknown attribute on <\(element.name)> (allowed: \(allowed.joined(separator: ", ")))"
            )
        }
    }

    func bool(_ element: XMLElement, _ name: String, field: String) throws(ContextError) -> Bool? {
        guard let text = element.attribute(name) else { return nil }
        guard let value = Validation.bool(text) else {
            throw error(.invalidValue, field, "expected yes or no, got \(Validation.quote(text))")
        }
        return value
    }

    mutating func read(_ root: XMLElement) throws(ContextError) -> ContextSpec {
        guard root.name == ContextMetadata.rootName else {
            throw error(.wrongRoot, "", "root element is <\(root.name)>, expected <context>")
        }
        guard root.namespaceURI.isEmpty || root.namespaceURI == ContextMetadata.namespaceURI else {
            throw error(
                .wrongRoot,
                "",
                "root element is in namespace \(Validation.quote(root.namespaceURI)), expected \(ContextMetadata.namespaceURI)"
            )
        }
        try checkAttributes(root, allowed: ContextMetadata.rootAttributes) { $0 }
        var spec = ContextSpec()
        try readRootAttributes(root, into: &spec)
        if !root.text.allSatisfy(\.isWhitespace) {
            throw error(
                .unknownElement, "", "text directly inside <context> is not allowed; put it in a <var> or <file>")
        }
        try readChildren(root, into: &spec)
        try checkFileTree(spec.files)
        return spec
    }

    /// `managed`, `format`, `instance-id`, `hostname`, `device`, `volume-id`, `companion`.
    func readRootAttributes(_ root: XMLElement, into spec: inout ContextSpec) throws(ContextError) {
        spec.managed = try bool(root, "managed", field: "managed") ?? true
        if let text = root.attribute("format") {
            guard let format = ContextFormat(rawValue: text) else {
                throw error(
                    .invalidValue,
                    "format",
                    "unknown format \(Validation.quote(text)) (expected one of: \(ContextFormat.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            spec.format = format
        }
        if let text = root.attribute("instance-id") {
            guard let policy = InstanceIDPolicy(rawValue: text) else {
                throw error(
                    .invalidValue, "instance-id",
                    "unknown instance-id policy \(Validation.quote(text)) (expected stable or per-host)")
            }
            spec.instanceID = policy
        }
        if let text = root.attribute("hostname") {
            if let problem = Validation.hostname(text) { throw error(.invalidValue, "hostname", problem) }
            spec.hostname = text
        }
        if let text = root.attribute("device") {
            if let problem = Validation.deviceTarget(text) { throw error(.invalidValue, "device", problem) }
            spec.device = text
        }
        if let text = root.attribute("volume-id") {
            if let problem = Validation.volumeID(text) { throw error(.invalidValue, "volume-id", problem) }
            if let format = spec.format, format != .files {
                throw error(
                    .unsupportedByFormat, "volume-id",
                    "volume-id is only allowed with format=\"files\", not \(format.rawValue)")
            }
            spec.volumeID = text
        }
        if let text = root.attribute("channel") {
            guard text == "add" || text == "use" else {
                throw error(.invalidValue, "channel", "expected add or use, got \(Validation.quote(text))")
            }
            spec.addsGuestChannel = text == "add"
        }
        spec.companion = try bool(root, "companion", field: "companion") ?? false
    }

    /// The `<var>`, `<file>` and document children, each checked and counted against the limits.
    mutating func readChildren(_ root: XMLElement, into spec: inout ContextSpec) throws(ContextError) {
        var varIndex = 0
        var fileIndex = 0
        var seenVariables: Set<String> = []
        var seenPaths: Set<String> = []
        for child in root.children {
            switch child.name {
            case "var":
                varIndex += 1
                try checkNamespace(child, field: "var[\(varIndex)]")
                guard varIndex <= limits.maxVariables else {
                    throw error(.limitExceeded, "var[\(varIndex)]", "more than \(limits.maxVariables) variables")
                }
                let variable = try readVariable(child, index: varIndex)
                guard seenVariables.insert(variable.name).inserted else {
                    throw error(.duplicate, "var[\(variable.name)]", "variable is defined twice")
                }
                spec.variables.append(variable)
            case "file":
                fileIndex += 1
                try checkNamespace(child, field: "file[\(fileIndex)]")
                guard fileIndex <= limits.maxFiles else {
                    throw error(.limitExceeded, "file[\(fileIndex)]", "more than \(limits.maxFiles) files")
                }
                let file = try readFile(child, index: fileIndex)
                guard seenPaths.insert(file.path).inserted else {
                    throw error(
                        .duplicate, "file[\(fileIndex)].path", "path \(Validation.quote(file.path)) is given twice")
                }
                spec.files.append(file)
            case "user-data", "network-config", "vendor-data":
                let field = child.name
                try checkNamespace(child, field: field)
                let document = try readDocument(child, field: field)
                switch field {
                case "user-data":
                    guard spec.userData == nil else { throw error(.duplicate, field, "<user-data> is given twice") }
                    spec.userData = document
                case "network-config":
                    guard spec.networkConfig == nil else {
                        throw error(.duplicate, field, "<network-config> is given twice")
                    }
                    spec.networkConfig = document
                default:
                    guard spec.vendorData == nil else { throw error(.duplicate, field, "<vendor-data> is given twice") }
                    spec.vendorData = document
                }
            default:
                throw error(
                    .unknownElement,
                    child.name,
                    "unknown element <\(child.name)> in <context> at line \(child.line) (allowed: var, file, user-data, network-config, vendor-data)"
                )
            }
        }
    }

    /// Refuses a file whose path is also a directory of another file (`a` and `a/b`).
    func checkFileTree(_ files: [FileSpec]) throws(ContextError) {
        var directories: Set<String> = []
        for file in files {
            var prefix = ""
            for component in file.path.split(separator: "/").dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                directories.insert(prefix)
            }
        }
        for (index, file) in files.enumerated() where directories.contains(file.path) {
            throw error(
                .duplicate, "file[\(index + 1)].path",
                "path \(Validation.quote(file.path)) is both a file and the directory of another file")
        }
    }

    func noChildren(_ element: XMLElement, field: String) throws(ContextError) {
        if let child = element.children.first {
            throw error(
                .unknownElement, field, "element <\(child.name)> is not allowed inside <\(element.name)>")
        }
    }

    /// The element's content, decoded when `encoding="base64"`, size-checked.
    mutating func content(_ element: XMLElement, field: String) throws(ContextError) -> FileContent {
        let content: FileContent
        switch element.attribute("encoding") {
        case nil, "text":
            content = .text(element.text)
        case "base64":
            let compact = element.text.filter { !$0.isWhitespace }
            guard let data = Data(base64Encoded: compact) else {
                throw error(.invalidValue, field, "content is not valid base64")
            }
            content = .bytes(Array(data))
        case let other?:
            throw error(
                .invalidValue, field + ".encoding",
                "unknown encoding \(Validation.quote(other)) (expected text or base64)")
        }
        let size: Int
        switch content {
        case .text(let text): size = text.utf8.count
        case .bytes(let bytes): size = bytes.count
        }
        guard size <= limits.maxFileBytes else {
            throw error(
                .limitExceeded, field, "content is \(size) bytes, more than the limit of \(limits.maxFileBytes)")
        }
        totalBytes += size
        guard totalBytes <= limits.maxTotalBytes else {
            throw error(
                .limitExceeded, field, "all content together is more than the limit of \(limits.maxTotalBytes) bytes")
        }
        return content
    }

    /// Template content must be text: base64-decoded bytes must be UTF-8.
    func templateText(_ content: FileContent, field: String) throws(ContextError) -> FileContent {
        guard case .bytes(let bytes) = content else { return content }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.utf8.elementsEqual(bytes) else {
            throw error(.invalidValue, field, "a template must be UTF-8 text, but the decoded content is not")
        }
        return .text(text)
    }

    mutating func readVariable(_ element: XMLElement, index: Int) throws(ContextError) -> VariableSpec {
        let positional = "var[\(index)]"
        try checkAttributes(element, allowed: ContextMetadata.varAttributes) { "\(positional).\($0)" }
        guard let name = element.attribute("name") else {
            throw error(.missing, "\(positional).name", "<var> needs a name attribute")
        }
        if let problem = Validation.variableName(name, maxLength: limits.maxNameLength) {
            throw error(.invalidValue, "\(positional).name", problem)
        }
        if Validation.reservedVMVariableNames.contains(name) {
            throw error(
                .invalidValue,
                "\(positional).name",
                "variable name \(Validation.quote(name)) is reserved (reserved: \(Validation.reservedVMVariableNames.sorted().joined(separator: ", ")))"
            )
        }
        let field = "var[\(name)]"
        try noChildren(element, field: field)
        let secret = try bool(element, "secret", field: "\(field).secret") ?? false
        let value: String
        switch try content(element, field: field) {
        case .text(let text):
            value = text
        case .bytes(let bytes):
            let text = String(decoding: bytes, as: UTF8.self)
            guard text.utf8.elementsEqual(bytes) else {
                throw error(.invalidValue, field, "a variable must be UTF-8 text, but the decoded value is not")
            }
            guard !bytes.contains(0) else {
                throw error(.invalidValue, field, "a variable must not contain a NUL byte")
            }
            value = text
        }
        return VariableSpec(name: name, value: value, secret: secret)
    }

    mutating func readFile(_ element: XMLElement, index: Int) throws(ContextError) -> FileSpec {
        let positional = "file[\(index)]"
        try checkAttributes(element, allowed: ContextMetadata.fileAttributes) { "\(positional).\($0)" }
        guard let path = element.attribute("path") else {
            throw error(.missing, "\(positional).path", "<file> needs a path attribute")
        }
        if let (code, problem) = Validation.path(path, limits: limits) {
            throw error(code, "\(positional).path", problem)
        }
        try noChildren(element, field: positional)
        var mode: UInt16?
        if let text = element.attribute("mode") {
            guard let value = Validation.mode(text) else {
                throw error(
                    .invalidValue, "\(positional).mode",
                    "expected an octal mode like \"0644\" (at most 0777), got \(Validation.quote(text))")
            }
            mode = value
        }
        let isTemplate = try bool(element, "template", field: "\(positional).template") ?? false
        var content = try content(element, field: positional)
        if isTemplate {
            content = try templateText(content, field: positional)
        }
        return FileSpec(path: path, content: content, isTemplate: isTemplate, mode: mode)
    }

    mutating func readDocument(_ element: XMLElement, field: String) throws(ContextError) -> DocumentSpec {
        try checkAttributes(element, allowed: ContextMetadata.documentAttributes) { "\(field).\($0)" }
        try noChildren(element, field: field)
        let isTemplate = try bool(element, "template", field: "\(field).template") ?? false
        var content = try content(element, field: field)
        if isTemplate {
            content = try templateText(content, field: field)
        }
        return DocumentSpec(content: content, isTemplate: isTemplate)
    }
}
