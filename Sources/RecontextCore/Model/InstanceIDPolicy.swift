// MARK: - InstanceIDPolicy

/// How the instance id that cloud-init sees is derived.
///
/// cloud-init re-runs its per-instance modules (users, SSH host keys, runcmd, ...) only when the
/// instance id changes.
public enum InstanceIDPolicy: String, Sendable, Hashable, CaseIterable {
    /// The domain UUID: the guest keeps one identity wherever it runs; per-instance modules run once.
    case stable
    /// `<uuid>-<host name>`: each new host is a new instance; per-instance modules re-run after
    /// every migration to another host.
    case perHost = "per-host"

    /// The instance id for a domain running on a host.
    ///
    /// Characters of the host name outside `[A-Za-z0-9._-]` become `_`, because cloud-init uses
    /// the instance id as a directory name.
    /// - Parameters:
    ///   - domain: The domain.
    ///   - host: The host's name.
    /// - Returns: The instance id.
    public func instanceID(domain: DomainIdentity, host: String) -> String {
        switch self {
        case .stable:
            return domain.uuid
        case .perHost:
            let safe = String(
                String.UnicodeScalarView(
                    host.unicodeScalars.map { scalar in
                        switch scalar {
                        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": scalar
                        default: "_"
                        }
                    }
                )
            )
            return "\(domain.uuid)-\(safe)"
        }
    }
}
