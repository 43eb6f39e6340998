import Foundation

/// `recontextd-bench iso [--runs N] [--dir DIR] [--out FILE]`
/// `recontextd-bench scale [--domains N] [--runs N] [--dir DIR] [--out FILE]`
///
/// Prints progress on standard error and the results as JSON (to `--out` or standard output).
/// `scripts/bench` runs both, with the real-QEMU parts, and renders the tables.
let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
let usage = "usage: recontextd-bench iso|scale [--runs N] [--domains N] [--dir DIR] [--out FILE]"
guard let command = arguments.first else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(64)
}
let directory = option("--dir") ?? NSTemporaryDirectory() + "/recontextd-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
do {
    switch command {
    case "iso":
        let result = try ImageBenchmark.run(runs: Int(option("--runs") ?? "100") ?? 100, directory: directory)
        try emit(result, to: option("--out"))
    case "scale":
        let result = try await ScaleBenchmark.run(
            domains: Int(option("--domains") ?? "1000") ?? 1000, leakRuns: Int(option("--runs") ?? "10000") ?? 10000,
            directory: directory)
        try emit(result, to: option("--out"))
    default:
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("recontextd-bench: \(error)\n".utf8))
    exit(1)
}
