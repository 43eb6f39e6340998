/// Cuts a guest's byte stream into lines, bounded: it never holds more than
/// ``GuestProtocol/maxLineBytes`` of a line, and a longer line is dropped up to its newline and
/// reported once as ``GuestLineError/Reason/oversized``.
public struct GuestLineFramer: Sendable {
    /// What the framer found in the bytes it was fed.
    public enum Item: Sendable, Hashable {
        /// A complete line, without its newline.
        case line([UInt8])
        /// A line over the limit, dropped.
        case oversized
    }

    private var buffer: [UInt8] = []
    private var discarding = false

    /// Creates an empty framer.
    public init() {
        buffer.reserveCapacity(GuestProtocol.maxLineBytes)
    }

    /// Bytes of an unfinished line held now (at most ``GuestProtocol/maxLineBytes``).
    public var pendingBytes: Int { buffer.count }

    /// Feeds bytes; returns the complete lines and drops found in them, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if discarding {
                    discarding = false
                } else {
                    items.append(.line(buffer))
                }
                buffer.removeAll(keepingCapacity: true)
                continue
            }
            if discarding { continue }
            if buffer.count + 1 >= GuestProtocol.maxLineBytes {
                // One byte more plus its newline would exceed the limit: drop the line.
                buffer.removeAll(keepingCapacity: true)
                discarding = true
                items.append(.oversized)
                continue
            }
            buffer.append(byte)
        }
        return items
    }

    /// Forgets a partial line (the port was closed).
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        discarding = false
    }
}
