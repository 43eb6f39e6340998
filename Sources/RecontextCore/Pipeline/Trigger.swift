/// Why a pipeline run was started.
public enum Trigger: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The domain arrived by live migration (RESUMED/MIGRATED).
    case migratedIn = "migrated-in"
    /// The domain arrived by migration but stays paused (STARTED/MIGRATED then SUSPENDED/PAUSED).
    case arrivedPaused = "arrived-paused"
    /// The domain started (STARTED/BOOTED, or restored).
    case started
    /// Its context metadata changed (METADATA_CHANGE in the context namespace).
    case metadataChanged = "metadata-changed"
    /// The configuration was reloaded (SIGHUP).
    case reload
    /// Someone ran `recontextd apply`.
    case manual
    /// Start-up, reconnect or periodic reconcile.
    case reconcile
    /// A retry after a transient failure.
    case retry

    public var description: String { rawValue }
}

/// A lifecycle event as far as triggers care, mapped from the hypervisor's event and detail.
public enum LifecycleSignal: Sendable, Hashable {
    case startedBooted, startedMigrated, startedRestored
    case resumedMigrated, resumedOther
    case suspendedPaused, suspendedMigrated, suspendedOther
    case stoppedMigrated, stoppedFailed, stoppedOther
    case defined, undefined, other
}

/// An event from the hypervisor, as the daemon's trigger logic sees it.
public enum HypervisorEvent: Sendable, Hashable {
    /// A lifecycle event of a domain.
    case lifecycle(DomainIdentity, LifecycleSignal)
    /// The domain's context metadata (our namespace) changed.
    case contextMetadataChanged(DomainIdentity)
    /// The connection to the hypervisor was lost.
    case connectionClosed(String)
}

/// Decides which events start a pipeline run.
///
/// - RESUMED/MIGRATED: the migration is done and the VM runs here: run.
/// - STARTED/MIGRATED alone: not yet (the migration may still fail); remembered as incoming.
/// - SUSPENDED/PAUSED of an incoming domain: it arrived paused and will never send
///   RESUMED/MIGRATED: run.
/// - STOPPED/FAILED of an incoming domain: the migration was aborted: forget it.
/// - STARTED/BOOTED (and restores): run.
/// - Events of domains leaving (SUSPENDED/MIGRATED, STOPPED/MIGRATED on the source): nothing.
/// - METADATA_CHANGE in the context namespace: run. Our own applied-state namespace never
///   reaches here (the daemon filters by namespace).
public struct TriggerPolicy: Sendable {
    private var incoming: Set<String> = []

    /// Creates a policy with no incoming migrations.
    public init() {}

    /// The UUIDs seen with STARTED/MIGRATED that have neither resumed, paused nor stopped.
    public var incomingMigrations: Set<String> { incoming }

    /// The trigger for an event, if it should start a run.
    public mutating func trigger(for event: HypervisorEvent) -> Trigger? {
        switch event {
        case .connectionClosed:
            return nil
        case .contextMetadataChanged:
            return .metadataChanged
        case .lifecycle(let domain, let signal):
            switch signal {
            case .startedMigrated:
                incoming.insert(domain.uuid)
                return nil
            case .resumedMigrated:
                incoming.remove(domain.uuid)
                return .migratedIn
            case .suspendedPaused:
                return incoming.remove(domain.uuid) != nil ? .arrivedPaused : nil
            case .startedBooted, .startedRestored:
                incoming.remove(domain.uuid)
                return .started
            case .stoppedFailed, .stoppedMigrated, .stoppedOther, .undefined:
                incoming.remove(domain.uuid)
                return nil
            case .defined, .resumedOther, .suspendedMigrated, .suspendedOther, .other:
                return nil
            }
        }
    }
}
