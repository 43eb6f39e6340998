import Foundation
import Testing

// MARK: - RealPart

/// What a test does when a real part of the machine it needs is missing (root, libvirtd, QEMU,
/// journald, Python's prometheus_client, genisoimage and pycdlib, a built recontextd binary, make,
/// systemd-analyze, dpkg-deb): skip, loudly, with the reason; or, where the run must prove that
/// everything ran (CI: `.ci/run` sets `RECONTEXTD_REQUIRE_REAL_TESTS=1`), fail with the reason.
///
/// Every such test says so with one trait:
///
/// ```swift
/// @Suite("live daemon", .serialized, .realPart(missing: LibvirtTestHost.skipReason))
/// ```
public enum RealPart {
    /// The environment variable that turns a missing part from a skip into a failure when it is `1`.
    public static let requireVariable = "RECONTEXTD_REQUIRE_REAL_TESTS"

    /// Whether this run requires every real part (``requireVariable`` is `1`).
    public static var isRequired: Bool {
        ProcessInfo.processInfo.environment[requireVariable] == "1"
    }

    /// What to do with a test.
    public enum Decision: Sendable, Hashable {
        /// Everything it needs is here.
        case run
        /// Something is missing and this run does not require it: skip, saying why.
        case skip(String)
        /// Something is missing and this run requires it: fail, saying why.
        case fail(String)
    }

    /// The one rule.
    /// - Parameters:
    ///   - reason: What is missing, or `nil` when nothing is.
    ///   - required: Whether the run requires every real part (``isRequired``).
    /// - Returns: The decision.
    public static func decision(missing reason: String?, required: Bool) -> Decision {
        guard let reason else { return .run }
        return required ? .fail(reason) : .skip(reason)
    }
}

/// The failure of a test whose real part is missing in a run that requires it.
public struct RealPartMissing: Error, CustomStringConvertible {
    /// What is missing.
    public var reason: String

    /// The reason and the switch that made it a failure.
    public var description: String {
        "\(reason); \(RealPart.requireVariable)=1 makes this a failure, not a skip"
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test when `reason` is `nil`; otherwise skips it with the reason, or fails it with the
    /// reason when ``RealPart/isRequired`` (see ``RealPart``).
    /// - Parameters:
    ///   - reason: What the machine lacks for this test (a `skipReason`), or `nil`.
    ///   - sourceLocation: Where the trait is written.
    /// - Returns: The trait.
    public static func realPart(missing reason: String?, sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        let decision = RealPart.decision(missing: reason, required: RealPart.isRequired)
        return .enabled(reason.map { Comment(rawValue: $0) }, sourceLocation: sourceLocation) {
            switch decision {
            case .run: return true
            case .skip: return false
            case .fail(let reason): throw RealPartMissing(reason: reason)
            }
        }
    }
}
