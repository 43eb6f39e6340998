/// Why a run ended early: the phase it was in, the cause, and whether a later run may succeed.
public struct RunError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The phase that failed.
    public var phase: Phase
    /// What went wrong, in words.
    public var cause: String
    /// Whether a later run may succeed (the coordinator retries those).
    public var isTransient: Bool
    /// The hypervisor's own error code, when it gave one (logged as `hypervisor.error_code`).
    public var hypervisorCode: Int32?

    /// Creates a run error.
    public init(phase: Phase, cause: String, isTransient: Bool, hypervisorCode: Int32? = nil) {
        self.phase = phase
        self.cause = cause
        self.isTransient = isTransient
        self.hypervisorCode = hypervisorCode
    }

    /// A failed hypervisor operation in `phase`.
    init(phase: Phase, _ error: HypervisorError) {
        self.init(phase: phase, cause: "\(error)", isTransient: error.isTransient, hypervisorCode: error.code)
    }

    /// A failed image-store operation in `phase`.
    init(phase: Phase, _ error: ImageStoreError) {
        self.init(phase: phase, cause: "\(error)", isTransient: error.isTransient)
    }

    public var description: String { "\(phase): \(cause)" }
}

/// How a run ends before it applies anything: skipped, or failed.
enum RunEnd: Error {
    /// Nothing to do.
    case skipped(RunReport.SkipReason)
    /// The attached image already holds the desired content.
    case unchanged(AppliedState)
    /// A phase failed; the previous image stays attached.
    case failed(RunError)
}
