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

    /// The domain the event is about.
    public var domain: DomainIdentity {
        switch self {
        case .lifecycle(let domain, _), .contextMetadataChanged(let domain): domain
        }
    }
}

/// Decides which events start a pipeline run: a pure function of the event and whether the
/// domain is arriving by migration (the ``DomainCoordinator`` keeps that per domain).
///
/// - RESUMED/MIGRATED: the migration is done and the VM runs here: run.
/// - STARTED/MIGRATED alone: not yet (the migration may still fail); the domain is incoming.
/// - SUSPENDED/PAUSED of an incoming domain: it arrived paused and will never send
///   RESUMED/MIGRATED: run.
/// - STOPPED/FAILED of an incoming domain: the migration was aborted: forget it.
/// - STARTED/BOOTED (and restores): run.
/// - Events of domains leaving (SUSPENDED/MIGRATED, STOPPED/MIGRATED on the source): nothing.
/// - METADATA_CHANGE in the context namespace: run. Our own applied-state namespace never
///   reaches here (the daemon filters by namespace).
public enum TriggerPolicy {
    /// What an event means for a domain.
    public struct Decision: Sendable, Hashable {
        /// The run to start, if any.
        public var trigger: Trigger?
        /// Whether the domain is arriving by migration after this event.
        public var incoming: Bool
    }

    /// The decision for `event` about a domain that is (`incoming`) or is not arriving.
    public static func decide(_ event: HypervisorEvent, incoming: Bool) -> Decision {
        switch event {
        case .contextMetadataChanged:
            return Decision(trigger: .metadataChanged, incoming: incoming)
        case .lifecycle(_, let signal):
            switch signal {
            case .startedMigrated:
                return Decision(trigger: nil, incoming: true)
            case .resumedMigrated:
                return Decision(trigger: .migratedIn, incoming: false)
            case .suspendedPaused:
                return Decision(trigger: incoming ? .arrivedPaused : nil, incoming: false)
            case .startedBooted, .startedRestored:
                return Decision(trigger: .started, incoming: false)
            case .stoppedFailed, .stoppedMigrated, .stoppedOther, .undefined:
                return Decision(trigger: nil, incoming: false)
            case .defined, .resumedOther, .suspendedMigrated, .suspendedOther, .other:
                return Decision(trigger: nil, incoming: incoming)
            }
        }
    }
}
