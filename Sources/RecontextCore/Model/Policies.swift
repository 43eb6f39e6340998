/// Which domains recontextd manages.
public enum ManagedDomains: String, Sendable, Hashable, CaseIterable {
    /// Only domains whose metadata opts in (has a `<context>` element, not `managed="no"`).
    case optIn = "opt-in"
    /// Every domain; those without metadata get an empty spec.
    case all
}

/// How the context CD-ROM of a running domain is changed.
public enum DeviceMode: String, Sendable, Hashable, CaseIterable {
    /// Change the media of the existing CD-ROM (works on SATA, IDE and SCSI).
    case mediaChange = "media-change"
    /// Detach the SCSI CD-ROM and attach a new one (virtio-scsi only).
    case scsiReplace = "scsi-replace"
}
