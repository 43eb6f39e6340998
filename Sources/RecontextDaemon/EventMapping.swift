import RecontextCore
import Virt

extension HypervisorEvent {
    /// The pipeline's view of a libvirt domain event, or `nil` for events no trigger cares about
    /// (tray changes, device events, metadata of other namespaces, ours included).
    public init?(_ event: DomainEvent) {
        let domain = DomainIdentity(name: event.domain.name, uuid: event.domain.uuid)
        switch event.kind {
        case .lifecycle(let lifecycle):
            self = .lifecycle(domain, LifecycleSignal(lifecycle))
        case .metadataChange(.element, let namespace) where namespace == ContextMetadata.namespaceURI:
            self = .contextMetadataChanged(domain)
        default:
            return nil
        }
    }
}

extension LifecycleSignal {
    /// Maps libvirt's lifecycle event and detail.
    public init(_ event: LifecycleEvent) {
        switch event {
        case .started(.booted): self = .startedBooted
        case .started(.migrated): self = .startedMigrated
        case .started(.restored), .started(.fromSnapshot), .started(.wakeup): self = .startedRestored
        case .resumed(.migrated): self = .resumedMigrated
        case .resumed: self = .resumedOther
        case .suspended(.paused): self = .suspendedPaused
        case .suspended(.migrated): self = .suspendedMigrated
        case .suspended: self = .suspendedOther
        case .stopped(.migrated): self = .stoppedMigrated
        case .stopped(.failed): self = .stoppedFailed
        case .stopped: self = .stoppedOther
        case .defined: self = .defined
        case .undefined: self = .undefined
        default: self = .other
        }
    }
}
