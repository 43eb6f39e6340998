// MARK: - ContextFormat

/// The on-disc layout of a context CD-ROM: which guest agent reads it and under which volume id.
///
/// One ``ContextSpec`` renders into any of these formats (see ``ContextRenderer``):
///
/// | case | raw value | volume id | read by |
/// |---|---|---|---|
/// | ``noCloud`` | `nocloud` | `cidata` | cloud-init (NoCloud datasource) |
/// | ``configDrive`` | `configdrive` | `config-2` | cloud-init (ConfigDrive datasource), OpenStack guest tools |
/// | ``openNebula`` | `opennebula` | `CONTEXT` | OpenNebula `one-context`, cloud-init (OpenNebula datasource) |
/// | ``files`` | `files` | ``ContextSpec/volumeID`` or ``defaultFilesVolumeID`` (`RECONTEXT`) | anything that mounts the disc |
public enum ContextFormat: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// cloud-init NoCloud: `meta-data`, `user-data`, optional `network-config` and `vendor-data`.
    case noCloud = "nocloud"
    /// OpenStack ConfigDrive: `openstack/latest/meta_data.json`, optional `user_data`, `network_data.json`.
    case configDrive = "configdrive"
    /// OpenNebula: `context.sh` with `KEY='value'` lines.
    case openNebula = "opennebula"
    /// Plain files: only the spec's files and the recontext records.
    case files

    /// The volume id used by ``files`` when the spec names none.
    ///
    /// Deliberately not `CONTEXT`, so OpenNebula's guest tools do not try to run a `context.sh`
    /// that a plain-files disc does not have.
    public static let defaultFilesVolumeID = "RECONTEXT"

    /// The ISO 9660 volume id the guest agent looks for.
    ///
    /// For ``files`` this is ``defaultFilesVolumeID``; a spec may name another one.
    public var defaultVolumeID: String {
        switch self {
        case .noCloud: "cidata"
        case .configDrive: "config-2"
        case .openNebula: "CONTEXT"
        case .files: Self.defaultFilesVolumeID
        }
    }

    /// The raw value, as written in metadata and configuration.
    public var description: String { rawValue }
}
