import RecontextCore
import Virt

extension HypervisorEvent {
    /// The pipeline's view of a libvirt event, or `nil` for events no trigger cares about
    /// (tray changes, device events, metadata of other namespaces, ours included).
    public init?(_ event: ConnectionEvent) {
        switch event {
        case .closed(let reason):
            self = .connectionClosed("\(reason)")
        case .domain(let domainEvent):
            let domain = DomainIdentity(name: domainEvent.domain.name, uuid: domainEvent.domain.uuid)
            switch domainEvent.kind {
            case .lifecycle(let lifecycle):
                self = .lifecycle(domain, LifecycleSignal(lifecycle))
            case .metadataChange(.element, let namespace) where namespace == ContextMetadata.namespaceURI:
                self = .contextMetadataChanged(domain)
            default:
                return nil
            }
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
