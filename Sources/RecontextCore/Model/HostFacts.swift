// MARK: - HostFacts

/// What this hypervisor host tells every guest it runs: its name and its free variables.
///
/// Comes from the `host` section of the daemon configuration. The variables reach the guest in
/// every format (see ``ContextRenderer``) and in templates as `{{host.<name>}}`.
public struct HostFacts: Sendable, Hashable {
    /// The host's name, as the guest should see it (default: the machine's hostname).
    public var name: String
    /// Free variables, e.g. `monitoring_endpoint`, `ntp_server`, `proxy`, `zone`.
    public var variables: [String: String]
    /// Names of ``variables`` whose values must never appear in logs or in non-secret files.
    ///
    /// Secret values still reach the guest through templates and `context.sh`, never through
    /// `meta-data`, `meta_data.json` or `recontext/context.json`.
    public var secretVariables: Set<String>

    /// Creates host facts.
    /// - Parameters:
    ///   - name: The host's name.
    ///   - variables: Free variables.
    ///   - secretVariables: Names of variables that are secret.
    public init(name: String, variables: [String: String] = [:], secretVariables: Set<String> = []) {
        self.name = name
        self.variables = variables
        self.secretVariables = secretVariables
    }
}
