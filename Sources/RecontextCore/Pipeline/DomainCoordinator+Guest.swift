import FoundationEssentials

// MARK: - The guest's acknowledgements

extension DomainCoordinator {
    /// What this host last inserted into `uuid` (or found current), with the guest's accepted
    /// acknowledgement; `nil` before the domain's first run here or after it left.
    public func applied(of uuid: String) -> AppliedState? {
        domains[uuid]?.applied
    }

    /// Judges a guest's `applied` line from the channel of `uuid` (and only that domain's record
    /// can change): accepted when it names the generation and hash inserted last.
    /// - Returns: the verdict, and the record to write to the domain's metadata when it changed
    ///   (`nil` for an ack that repeats the recorded one: a guest replaying it costs no write).
    public func acknowledge(_ uuid: String, ack: GuestAck, at time: Date) -> (GuestVerdict, AppliedState?) {
        let verdict = GuestVerdict.judge(ack, inserted: domains[uuid]?.applied)
        guard case .accepted = verdict, var state = domains[uuid]?.applied else { return (verdict, nil) }
        if let known = state.guest, known.generation == ack.generation, known.result == ack.result {
            return (verdict, nil)
        }
        state.guest = GuestApplied(generation: ack.generation, result: ack.result, time: time)
        update(uuid) { $0.applied = state }
        return (verdict, state)
    }

    /// Domains whose guest has acknowledged an earlier generation than the one inserted, or none
    /// at all, among those with a channel (`withChannel`).
    public func laggingGuests(among withChannel: Set<String>) -> Int {
        withChannel.reduce(0) { count, uuid in
            guard let applied = domains[uuid]?.applied else { return count }
            return (applied.guest?.generation ?? 0) < applied.generation ? count + 1 : count
        }
    }
}

extension GuestApplied {
    /// The later of two acknowledgements (higher generation, then later time).
    static func newer(_ a: GuestApplied?, _ b: GuestApplied?) -> GuestApplied? {
        guard let a else { return b }
        guard let b else { return a }
        return (a.generation, a.time) >= (b.generation, b.time) ? a : b
    }
}
