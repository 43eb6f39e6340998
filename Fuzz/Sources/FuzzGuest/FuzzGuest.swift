import FuzzSupport
import RecontextCore

/// libFuzzer entry point: the bytes a hostile guest writes to its channel, through the host's
/// whole read path: the framer, the rate guard and the protocol parser. Any input must give
/// lines, drops or messages within the documented bounds, never a crash, a hang or growth.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGuest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var framer = GuestLineFramer()
    var rateGuard = GuestChannelGuard(limits: .init(burst: 1_000_000, perSecond: 0, floodDrops: 1_000_000))
    let now = ContinuousClock.now
    // Fed in uneven pieces, as a stream arrives.
    var offset = 0
    var piece = 1
    while offset < bytes.count {
        let end = min(bytes.count, offset + piece)
        for item in framer.feed(bytes[offset..<end]) {
            precondition(framer.pendingBytes < GuestProtocol.maxLineBytes)
            guard rateGuard.admit(at: now), case .line(let line) = item else { continue }
            precondition(line.count < GuestProtocol.maxLineBytes)
            if case .success(let message) = GuestProtocol.parse(line) {
                if case .applied(let ack) = message {
                    precondition(ack.hooks.count <= GuestProtocol.maxHooks && ack.contentHash.utf8.count == 64)
                }
                _ = GuestVerdict.judge(
                    message.ack
                        ?? GuestAck(
                            generation: 1, result: .ok, contentHash: String(repeating: "0", count: 64), host: "h",
                            trigger: "t", hooks: []),
                    inserted: nil)
            }
        }
        offset = end
        piece = piece % 97 + 13
    }
    return 0
}

extension GuestMessage {
    fileprivate var ack: GuestAck? {
        if case .applied(let ack) = self { return ack }
        return nil
    }
}

/// The program's entry point (see `FuzzSupport.runLibFuzzer`).
@_cdecl("fuzz_guest_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzGuest)
}
