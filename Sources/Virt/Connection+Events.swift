internal import CLibvirt
import Dispatch
import Synchronization

/// A stream of a connection's domain events, ending with ``ConnectionEvent/closed(_:)`` when the
/// connection closes.
///
/// Made by ``Connection/events()``. The libvirt callbacks are registered while the stream exists
/// and deregistered when it is cancelled, finished or dropped (like go-libvirt's scoped
/// subscriptions). Buffering is unbounded: a slow consumer never makes libvirt drop events, and
/// the callback on the event-loop thread never blocks.
public struct DomainEventStream: AsyncSequence, Sendable {
    public typealias Element = ConnectionEvent
    let stream: AsyncStream<ConnectionEvent>

    public func makeAsyncIterator() -> AsyncStream<ConnectionEvent>.Iterator {
        stream.makeAsyncIterator()
    }
}

extension Connection {
    /// Subscribes to lifecycle, metadata-change, tray-change, device-added, device-removed and
    /// disk-change events of every domain, and to the connection closing.
    ///
    /// The corresponding C function is `virConnectDomainEventRegisterAny`, once per event ID.
    /// - Throws: ``VirtError`` if libvirt refuses a registration (e.g. the connection is closed).
    public func events() throws(VirtError) -> DomainEventStream {
        let (stream, continuation) = AsyncStream.makeStream(of: ConnectionEvent.self, bufferingPolicy: .unbounded)
        let subscription = EventSubscription(continuation: continuation)

        let registrations: [(Int32, virConnectDomainEventGenericCallback)] = [
            (
                Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue),
                unsafeBitCast(lifecycleCallback, to: virConnectDomainEventGenericCallback.self)
            ),
            (
                Int32(VIR_DOMAIN_EVENT_ID_METADATA_CHANGE.rawValue),
                unsafeBitCast(metadataCallback, to: virConnectDomainEventGenericCallback.self)
            ),
            (
                Int32(VIR_DOMAIN_EVENT_ID_TRAY_CHANGE.rawValue),
                unsafeBitCast(trayCallback, to: virConnectDomainEventGenericCallback.self)
            ),
            (
                Int32(VIR_DOMAIN_EVENT_ID_DEVICE_ADDED.rawValue),
                unsafeBitCast(deviceAddedCallback, to: virConnectDomainEventGenericCallback.self)
            ),
            (
                Int32(VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED.rawValue),
                unsafeBitCast(deviceRemovedCallback, to: virConnectDomainEventGenericCallback.self)
            ),
            (
                Int32(VIR_DOMAIN_EVENT_ID_DISK_CHANGE.rawValue),
                unsafeBitCast(diskChangeCallback, to: virConnectDomainEventGenericCallback.self)
            ),
        ]
        let callbackIDs = try withHandle("virConnectDomainEventRegisterAny") { handle throws(VirtError) in
            var callbackIDs: [Int32] = []
            for (eventID, callback) in registrations {
                // Each registration owns one retain of the subscription, released by libvirt's free
                // callback when the registration is removed (not when registration fails).
                let opaque = Unmanaged.passRetained(subscription).toOpaque()
                virResetLastError()
                let id = virConnectDomainEventRegisterAny(handle, nil, eventID, callback, opaque, releaseSubscription)
                if id < 0 {
                    let error = LibvirtCall.lastError(operation: "virConnectDomainEventRegisterAny(\(eventID))")
                    Unmanaged<EventSubscription>.fromOpaque(opaque).release()
                    Self.deregister(callbackIDs, handle: handle)
                    throw error
                }
                callbackIDs.append(id)
            }
            return callbackIDs
        }
        let (closeToken, alreadyClosed) = addCloseSubscriber { reason in
            continuation.yield(.closed(reason))
            continuation.finish()
        }
        let ids = callbackIDs
        continuation.onTermination = { [self] _ in
            if let closeToken { removeCloseSubscriber(closeToken) }
            // onTermination may run on the event-loop thread (after a close); deregistering
            // there could need an RPC, so it is done on another thread.
            DispatchQueue.global().async { self.deregister(ids) }
        }
        if let alreadyClosed {
            continuation.yield(.closed(alreadyClosed))
            continuation.finish()
        }
        return DomainEventStream(stream: stream)
    }

    /// Deregisters `ids` unless the connection is closed; holds its own reference meanwhile, so
    /// ``close()`` neither waits for these RPCs nor frees the handle under them.
    private func deregister(_ ids: [Int32]) {
        ifOpen { handle in Self.deregister(ids, handle: handle) }
    }

    private static func deregister(_ ids: [Int32], handle: OpaquePointer) {
        for id in ids where virConnectDomainEventDeregisterAny(handle, id) < 0 {
            virResetLastError()
        }
    }
}

/// What one ``DomainEventStream`` registration hands to libvirt as its opaque pointer.
final class EventSubscription: Sendable {
    let continuation: AsyncStream<ConnectionEvent>.Continuation
    init(continuation: AsyncStream<ConnectionEvent>.Continuation) { self.continuation = continuation }

    func yield(_ domain: virDomainPtr?, _ kind: DomainEventKind) {
        let now = ContinuousClock.now
        guard let domain else { return }
        let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
        let reference = DomainReference(name: name, uuid: Domain.uuidString(domain))
        continuation.yield(.domain(DomainEvent(domain: reference, kind: kind, receivedAt: now)))
    }
}

// MARK: - C callbacks (run on the event-loop thread; they only copy values and yield)

private func subscription(_ opaque: UnsafeMutableRawPointer?) -> EventSubscription? {
    opaque.map { Unmanaged<EventSubscription>.fromOpaque($0).takeUnretainedValue() }
}

private func string(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

private func releaseSubscription(_ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    Unmanaged<EventSubscription>.fromOpaque(opaque).release()
}

private let lifecycleCallback: virConnectDomainEventCallback = { _, domain, event, detail, opaque in
    subscription(opaque)?.yield(domain, .lifecycle(LifecycleEvent(event: event, detail: detail)))
    return 0
}

private let metadataCallback: virConnectDomainEventMetadataChangeCallback = { _, domain, type, nsuri, opaque in
    let kind = MetadataKind(rawValue: type) ?? .element
    subscription(opaque)?.yield(domain, .metadataChange(kind, namespace: string(nsuri)))
}

private let trayCallback: virConnectDomainEventTrayChangeCallback = { _, domain, alias, reason, opaque in
    subscription(opaque)?.yield(
        domain, .trayChange(deviceAlias: string(alias) ?? "", TrayChange(rawValue: reason) ?? .open))
}

private let deviceAddedCallback: virConnectDomainEventDeviceAddedCallback = { _, domain, alias, opaque in
    subscription(opaque)?.yield(domain, .deviceAdded(deviceAlias: string(alias) ?? ""))
}

private let deviceRemovedCallback: virConnectDomainEventDeviceRemovedCallback = { _, domain, alias, opaque in
    subscription(opaque)?.yield(domain, .deviceRemoved(deviceAlias: string(alias) ?? ""))
}

private let diskChangeCallback: virConnectDomainEventDiskChangeCallback = {
    _, domain, old, new, alias, reason, opaque in
    subscription(opaque)?.yield(
        domain,
        .diskChange(oldSource: string(old), newSource: string(new), deviceAlias: string(alias) ?? "", reason: reason))
}
