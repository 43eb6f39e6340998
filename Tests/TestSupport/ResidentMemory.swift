import Foundation

/// Resident set size of a process, from `/proc/PID/statm` (its second field, in pages).
public enum ResidentMemory {
    /// The resident bytes of process `pid` (`nil`: this process), 0 when it cannot be read.
    public static func bytes(of pid: Int32? = nil) -> Int {
        let path = pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
        guard let statm = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
