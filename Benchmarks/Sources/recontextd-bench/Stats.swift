import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Clock and statistics

/// Milliseconds between two instants of the continuous clock.
func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1000 + Double(attoseconds) / 1e15
}

/// Times `body`, in milliseconds.
func timeMS(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return milliseconds(ContinuousClock.now - start)
}

/// Times an async `body`, in milliseconds.
func timeMSAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return milliseconds(ContinuousClock.now - start)
}

/// Median, p99 (nearest rank), min, max and count of a sample.
struct Summary: Sendable {
    var count: Int
    var median: Double
    var p99: Double
    var min: Double
    var max: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        count = sorted.count
        precondition(!sorted.isEmpty, "empty sample")
        func rank(_ p: Double) -> Double {
            let index = Int((p * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        p99 = rank(0.99)
        min = sorted.first!
        max = sorted.last!
    }

    var json: [String: Any] { ["n": count, "median": median, "p99": p99, "min": min, "max": max] }
}

// MARK: - /proc

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`).
func procStatusKiB(_ field: String, pid: String = "self") -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let digits = line.dropFirst(field.count + 1).filter { $0.isNumber }
        return Int(digits) ?? -1
    }
    return -1
}

/// User + system CPU time of this process, in milliseconds.
func cpuTimeMS() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) // Glibc imports RUSAGE_SELF as an enum
    let user = Double(usage.ru_utime.tv_sec) * 1000 + Double(usage.ru_utime.tv_usec) / 1000
    let system = Double(usage.ru_stime.tv_sec) * 1000 + Double(usage.ru_stime.tv_usec) / 1000
    return user + system
}

// MARK: - Output

/// Writes `object` as pretty JSON to `path`, or to standard output when `path` is nil.
func emit(_ object: [String: Any], to path: String?) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    if let path {
        try data.write(to: URL(fileURLWithPath: path))
    } else {
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

/// Progress on standard error.
func note(_ message: String) {
    FileHandle.standardError.write(Data("[bench] \(message)\n".utf8))
}
