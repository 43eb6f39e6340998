internal import CLibvirt
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A guest channel (a virtio-serial port) of a running domain, reached through libvirt: a
/// non-blocking stream opened with `virDomainOpenChannel` on the domain's connection.
///
/// libvirtd connects to the channel's UNIX socket and relays the bytes over the connection, so
/// the caller needs neither the socket's path nor access to it. libvirt tells ``onEvent`` when
/// bytes arrive or the stream ends; the callback runs on the event-loop thread
/// (``LibvirtEventLoop``), where ``receive(maxBytes:)`` may be called: a non-blocking receive
/// only takes bytes libvirt already queued, it makes no RPC. ``send(_:)`` and ``close()`` go
/// through the connection's one-call-at-a-time gate; call them off the event-loop thread.
///
/// `@unchecked Sendable`: the handle is guarded by a mutex; libvirt's stream is thread-safe.
public final class ChannelStream: @unchecked Sendable {
    /// What the stream's callback reports.
    public enum Event: Sendable, Hashable {
        /// Bytes can be received.
        case readable
        /// The other end went away or an error ended the stream.
        case ended
    }

    /// What ``receive(maxBytes:)`` found.
    public enum Received: Sendable, Hashable {
        /// Bytes.
        case bytes([UInt8])
        /// Nothing queued now.
        case wouldBlock
        /// The stream ended (the domain stopped or migrated away, the socket closed).
        case end
    }

    private let state: Mutex<StreamHandle?>
    private let connection: Connection
    /// The channel's name.
    public let name: String
    /// The domain's UUID.
    public let domainUUID: String

    private init(handle: OpaquePointer, connection: Connection, name: String, domainUUID: String) {
        state = Mutex(StreamHandle(pointer: handle))
        self.connection = connection
        self.name = name
        self.domainUUID = domainUUID
    }

    /// Opens the channel `name` of `domain` (its `<target name=...>` or device alias) and starts
    /// reporting stream events to `onEvent` (on the event-loop thread: it must not block).
    ///
    /// The corresponding C functions are `virStreamNew`, `virDomainOpenChannel` and
    /// `virStreamEventAddCallback`.
    /// - Parameters:
    ///   - force: take the channel over from another client that holds it.
    /// - Throws: ``VirtError``, e.g. when the domain has no such channel or it is not a UNIX socket.
    public static func open(
        _ domain: Domain, channel name: String, force: Bool = false,
        onEvent: @escaping @Sendable (Event) -> Void
    ) throws(VirtError) -> ChannelStream {
        let connection = domain.connection
        let operation = "virDomainOpenChannel(\(domain.name), \(name))"
        let handle = try connection.withHandle(operation) { handle throws(VirtError) -> OpaquePointer in
            virResetLastError()
            guard let stream = virStreamNew(handle, UInt32(VIR_STREAM_NONBLOCK.rawValue)) else {
                throw LibvirtCall.lastError(operation: "virStreamNew")
            }
            let flags = force ? UInt32(VIR_DOMAIN_CHANNEL_FORCE.rawValue) : 0
            if virDomainOpenChannel(domain.handle, name, stream, flags) < 0 {
                let error = LibvirtCall.lastError(operation: operation)
                virStreamFree(stream)
                throw error
            }
            let box = Unmanaged.passRetained(EventBox(onEvent)).toOpaque()
            let events = Int32(
                VIR_STREAM_EVENT_READABLE.rawValue | VIR_STREAM_EVENT_ERROR.rawValue
                    | VIR_STREAM_EVENT_HANGUP.rawValue)
            if virStreamEventAddCallback(stream, events, streamCallback, box, releaseEventBox) < 0 {
                let error = LibvirtCall.lastError(operation: "virStreamEventAddCallback")
                Unmanaged<EventBox>.fromOpaque(box).release()
                virStreamAbort(stream)
                virStreamFree(stream)
                throw error
            }
            return stream
        }
        return ChannelStream(handle: handle, connection: connection, name: name, domainUUID: domain.uuid)
    }

    /// Takes up to `maxBytes` that libvirt has queued. Never blocks, makes no RPC.
    ///
    /// The corresponding C function is `virStreamRecv` (non-blocking).
    public func receive(maxBytes: Int) -> Received {
        state.withLock { stream -> Received in
            guard let handle = stream?.pointer else { return .end }
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: maxBytes) { buffer in
                let count = virStreamRecv(handle, buffer.baseAddress, maxBytes)
                if count > 0 {
                    return .bytes(UnsafeRawBufferPointer(start: buffer.baseAddress, count: Int(count)).map { $0 })
                }
                if count == -2 { return .wouldBlock }
                virResetLastError()
                return .end
            }
        }
    }

    /// Sends all of `bytes` (a few hundred at most: one protocol line).
    ///
    /// The corresponding C function is `virStreamSend` (non-blocking; a full queue is retried a
    /// few times, then reported).
    /// - Throws: ``VirtError`` when the stream is closed or the send fails.
    public func send(_ bytes: [UInt8]) throws(VirtError) {
        let operation = "virStreamSend(\(name))"
        try connection.gate.run { () throws(VirtError) in
            try state.withLock { stream throws(VirtError) in
                guard let handle = stream?.pointer else {
                    throw VirtError(code: .operationInvalid, message: "the channel is closed", operation: operation)
                }
                var offset = 0
                var attempts = 0
                while offset < bytes.count {
                    let sent = bytes.withUnsafeBufferPointer { buffer in
                        buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                            virStreamSend(handle, $0 + offset, buffer.count - offset)
                        }
                    }
                    if sent > 0 {
                        offset += Int(sent)
                    } else if sent == -2, attempts < 100 {
                        attempts += 1
                        usleep(1000)
                    } else {
                        throw sent == -2
                            ? VirtError(
                                code: .operationTimeout, message: "the channel's queue stays full", operation: operation
                            )
                            : LibvirtCall.lastError(operation: operation)
                    }
                }
            }
        }
    }

    /// Stops the callback and aborts the stream. Idempotent.
    ///
    /// The corresponding C functions are `virStreamEventRemoveCallback`, `virStreamAbort` and
    /// `virStreamFree`.
    public func close() {
        connection.gate.run {
            let stream = state.withLock { stream in
                defer { stream = nil }
                return stream
            }
            guard let handle = stream?.pointer else { return }
            if virStreamEventRemoveCallback(handle) < 0 { virResetLastError() }
            if virStreamAbort(handle) < 0 { virResetLastError() }
            virStreamFree(handle)
        }
    }

    deinit {
        close()
    }
}

/// A stream pointer; libvirt's streams are safe to use from several threads.
private struct StreamHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The callback's context: the caller's closure, retained by libvirt until the callback is removed.
private final class EventBox: Sendable {
    let onEvent: @Sendable (ChannelStream.Event) -> Void
    init(_ onEvent: @escaping @Sendable (ChannelStream.Event) -> Void) { self.onEvent = onEvent }
}

private func releaseEventBox(_ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    Unmanaged<EventBox>.fromOpaque(opaque).release()
}

private func streamCallback(_ stream: virStreamPtr?, _ events: Int32, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let box = Unmanaged<EventBox>.fromOpaque(opaque).takeUnretainedValue()
    let ended = Int32(VIR_STREAM_EVENT_ERROR.rawValue | VIR_STREAM_EVENT_HANGUP.rawValue)
    if events & Int32(VIR_STREAM_EVENT_READABLE.rawValue) != 0 { box.onEvent(.readable) }
    if events & ended != 0 { box.onEvent(.ended) }
}
