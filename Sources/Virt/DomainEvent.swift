// swift-format-ignore-file: OneCasePerLine
// (The detail enums mirror libvirt's C enums, whose raw values start at 0 and count up.)

/// Something that happened on a connection: a domain event, or the connection closing.
public enum ConnectionEvent: Sendable, Hashable {
    /// An event about one domain.
    case domain(DomainEvent)
    /// The connection closed; no more events follow. Reconnect and subscribe again.
    case closed(CloseReason)
}

/// An event about one domain, copied out of libvirt's callback.
public struct DomainEvent: Sendable, Hashable {
    /// The domain it concerns.
    public var domain: DomainReference
    /// What happened.
    public var kind: DomainEventKind
    /// When the callback ran, on the continuous clock.
    public var receivedAt: ContinuousClock.Instant

    /// Creates an event value (used by the wrapper and by fakes).
    public init(domain: DomainReference, kind: DomainEventKind, receivedAt: ContinuousClock.Instant = .now) {
        self.domain = domain
        self.kind = kind
        self.receivedAt = receivedAt
    }
}

/// The kinds of domain event the wrapper subscribes to.
public enum DomainEventKind: Sendable, Hashable {
    /// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`.
    case lifecycle(LifecycleEvent)
    /// `VIR_DOMAIN_EVENT_ID_METADATA_CHANGE`: which metadata, and for custom elements the namespace.
    case metadataChange(MetadataKind, namespace: String?)
    /// `VIR_DOMAIN_EVENT_ID_TRAY_CHANGE`: a CD-ROM tray opened or closed.
    case trayChange(deviceAlias: String, TrayChange)
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_ADDED`.
    case deviceAdded(deviceAlias: String)
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`.
    case deviceRemoved(deviceAlias: String)
    /// `VIR_DOMAIN_EVENT_ID_DISK_CHANGE`: a disk's source was changed or dropped by libvirt.
    case diskChange(oldSource: String?, newSource: String?, deviceAlias: String, reason: Int32)
}

/// `virDomainMetadataType`.
public enum MetadataKind: Int32, Sendable, Hashable {
    case description = 0
    case title, element
}

/// `virDomainEventTrayChangeReason`.
public enum TrayChange: Int32, Sendable, Hashable {
    case open = 0
    case close
}

/// A lifecycle event with its detail (`virDomainEventType` and the matching detail enum).
///
/// Every event and detail libvirt 9.0 defines has a case; anything newer arrives as
/// ``unknown(event:detail:)``.
public enum LifecycleEvent: Sendable, Hashable {
    case defined(Defined)
    case undefined(Undefined)
    case started(Started)
    case suspended(Suspended)
    case resumed(Resumed)
    case stopped(Stopped)
    case shutdown(Shutdown)
    case pmSuspended(PMSuspended)
    case crashed(Crashed)
    /// An event or detail this wrapper does not know.
    case unknown(event: Int32, detail: Int32)

    /// `virDomainEventDefinedDetailType`.
    public enum Defined: Int32, Sendable, Hashable { case added = 0, updated, renamed, fromSnapshot }
    /// `virDomainEventUndefinedDetailType`.
    public enum Undefined: Int32, Sendable, Hashable { case removed = 0, renamed }
    /// `virDomainEventStartedDetailType`.
    public enum Started: Int32, Sendable, Hashable { case booted = 0, migrated, restored, fromSnapshot, wakeup }
    /// `virDomainEventSuspendedDetailType`.
    public enum Suspended: Int32, Sendable, Hashable {
        case paused = 0, migrated, ioError, watchdog, restored, fromSnapshot, apiError, postcopy, postcopyFailed
    }
    /// `virDomainEventResumedDetailType`.
    public enum Resumed: Int32, Sendable, Hashable {
        case unpaused = 0, migrated, fromSnapshot, postcopy, postcopyFailed
    }
    /// `virDomainEventStoppedDetailType`.
    public enum Stopped: Int32, Sendable, Hashable {
        case shutdown = 0, destroyed, crashed, migrated, saved, failed, fromSnapshot
    }
    /// `virDomainEventShutdownDetailType`.
    public enum Shutdown: Int32, Sendable, Hashable { case finished = 0, guest, host }
    /// `virDomainEventPMSuspendedDetailType`.
    public enum PMSuspended: Int32, Sendable, Hashable { case memory = 0, disk }
    /// `virDomainEventCrashedDetailType`.
    public enum Crashed: Int32, Sendable, Hashable { case panicked = 0, crashLoaded }

    /// Maps the numeric (event, detail) pair a callback receives.
    public init(event: Int32, detail: Int32) {
        let mapped: LifecycleEvent? =
            switch event {
            case 0: Defined(rawValue: detail).map { .defined($0) }
            case 1: Undefined(rawValue: detail).map { .undefined($0) }
            case 2: Started(rawValue: detail).map { .started($0) }
            case 3: Suspended(rawValue: detail).map { .suspended($0) }
            case 4: Resumed(rawValue: detail).map { .resumed($0) }
            case 5: Stopped(rawValue: detail).map { .stopped($0) }
            case 6: Shutdown(rawValue: detail).map { .shutdown($0) }
            case 7: PMSuspended(rawValue: detail).map { .pmSuspended($0) }
            case 8: Crashed(rawValue: detail).map { .crashed($0) }
            default: nil
            }
        self = mapped ?? .unknown(event: event, detail: detail)
    }
}
