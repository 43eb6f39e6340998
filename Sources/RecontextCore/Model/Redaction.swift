// MARK: - Redacted descriptions

// Values that may hold secrets describe themselves without their content, so that logging or
// printing a spec, host facts or a rendered file never leaks one.

extension VariableSpec: CustomStringConvertible, CustomDebugStringConvertible {
    /// `name="value"`, or `name=<secret>` for a secret variable.
    public var description: String {
        secret ? "\(name)=<secret>" : "\(name)=\(Validation.quote(value))"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }
}

extension HostFacts: CustomStringConvertible, CustomDebugStringConvertible {
    /// `name {a="1", token=<secret>}`, variables sorted, secret values left out.
    public var description: String {
        let shown = variables.keys.sorted().map { key in
            secretVariables.contains(key) ? "\(key)=<secret>" : "\(key)=\(Validation.quote(variables[key] ?? ""))"
        }
        return "\(name) {\(shown.joined(separator: ", "))}"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }
}

extension FileContent: CustomStringConvertible, CustomDebugStringConvertible {
    /// `text(N bytes)` or `bytes(N)`: content may hold secrets, so it is not shown.
    public var description: String {
        switch self {
        case .text(let text): "text(\(text.utf8.count) bytes)"
        case .bytes(let bytes): "bytes(\(bytes.count))"
        }
    }

    /// The same as ``description``.
    public var debugDescription: String { description }
}

extension RenderedFile: CustomStringConvertible, CustomDebugStringConvertible {
    /// `path (N bytes, mode 0644)`: content may hold secrets, so it is not shown.
    public var description: String {
        "\(path) (\(contents.count) bytes, mode \(Validation.formatMode(mode)))"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }
}

extension RenderedContext: CustomStringConvertible {
    /// `format volume-id sha256:hash [files]`, without file contents.
    public var description: String {
        "\(format) \(volumeID) sha256:\(contentHash) [\(files.map(\.description).joined(separator: ", "))]"
    }
}
