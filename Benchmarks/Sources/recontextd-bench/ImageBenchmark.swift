import Foundation
import ISOBuilder

#if canImport(Glibc)
    import Glibc
#endif

/// Benchmark 1: building an image in process against `genisoimage -R -J` and
/// `xorriso -as mkisofs -R -J` as subprocesses, counted the same way: inputs in, image file out.
///
/// At two levels of durability, each counted the same way for the in-process build and the tool:
/// - *image file out* (what the tools do, and what the daemon does before the live insert):
///   in process, `ISOBuilder.writeImage(durable: false)` from memory to a temporary name renamed
///   into place; a tool: write the input files into a fresh directory, spawn it (`posix_spawn`, the
///   cheapest way to start it), wait for it;
/// - *flushed to disk* (what the daemon does before the persistent definition names the image):
///   the same, then `fsync` of the image and of its directory, for both.
/// Runs are interleaved (each round runs every way once, in a rotating order), so drift in the
/// machine's load hits all alike.
enum ImageBenchmark {
    struct Case {
        var name: String
        var files: [(path: String, bytes: [UInt8])]
        var totalBytes: Int { files.reduce(0) { $0 + $1.bytes.count } }
    }

    /// Deterministic pseudo-random printable bytes (text compresses nothing here; ISO9660 stores as is).
    static func content(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes[index] = UInt8(32 + (state >> 33) % 95)
        }
        return bytes
    }

    static var cases: [Case] {
        let one = Case(name: "1 file", files: [("meta-data", content(120, seed: 1))])
        // A typical NoCloud/ConfigDrive image: 10 files, ~40 KB in all, two levels deep.
        let tenSizes = [120, 2_000, 9_000, 6_000, 1_500, 4_000, 8_000, 3_500, 4_500, 1_380]
        let tenNames = [
            "meta-data", "user-data", "network-config", "vendor-data", "etc/monitoring.conf", "etc/ntp.conf",
            "etc/proxy.conf", "recontext/context.json", "recontext/generation.json", "openstack/latest/meta_data.json",
        ]
        let ten = Case(
            name: "10 files, 40 KB",
            files: zip(tenNames, tenSizes).enumerated().map { ($1.0, content($1.1, seed: UInt64($0 + 10))) })
        // 200 files in 10 directories, ~2 MB.
        var many: [(String, [UInt8])] = []
        for index in 0..<200 {
            many.append(
                ("dir\(index / 20)/file\(index).txt", content(10_000 + (index % 7) * 100, seed: UInt64(index + 100))))
        }
        return [one, ten, Case(name: "200 files, 2 MB", files: many)]
    }

    // MARK: - The three ways

    static func inProcess(_ testCase: Case, output: String, durable: Bool) throws {
        var image = ISOImage(volumeID: "cidata", entries: [])
        for file in testCase.files { image.addFile(at: file.path, contents: file.bytes) }
        _ = try ISOBuilder().writeImage(image, to: output, mode: 0o644, durable: durable)
    }

    static func subprocess(_ tool: [String], _ testCase: Case, work: String, output: String, durable: Bool) throws {
        let input = work + "/in"
        // Inputs in: the files as a tool needs them, in a directory.
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        for file in testCase.files {
            let path = input + "/" + file.path
            let parent = (path as NSString).deletingLastPathComponent
            if parent != input {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw BenchError("open \(path): errno \(errno)") }
            _ = file.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let status = try spawnAndWait(tool + ["-R", "-J", "-V", "cidata", "-o", output, input])
        guard status == 0 else { throw BenchError("\(tool[0]) exited with \(status)") }
        // Flushed to disk: the image and its directory, as the daemon's ISOBuilder.makeDurable does.
        if durable { try ISOBuilder.makeDurable(output) }
    }

    /// `posix_spawn`s `arguments` with standard streams on /dev/null; returns the exit status.
    static func spawnAndWait(_ arguments: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ)
        guard rc == 0 else { throw BenchError("posix_spawn \(arguments[0]): \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    // MARK: - Run

    /// One way of building: in process (`tool == nil`) or a tool's command line; flushed or not.
    struct Way {
        var name: String
        var tool: [String]?
        var durable: Bool
    }

    static let ways = [
        Way(name: "in-process", tool: nil, durable: false),
        Way(name: "genisoimage", tool: ["genisoimage"], durable: false),
        Way(name: "xorriso", tool: ["xorriso", "-as", "mkisofs"], durable: false),
        Way(name: "in-process-durable", tool: nil, durable: true),
        Way(name: "genisoimage-durable", tool: ["genisoimage"], durable: true),
    ]

    static func run(runs: Int, directory: String) throws -> [String: Any] {
        var results: [[String: Any]] = []
        for testCase in cases {
            var samples: [String: [Double]] = [:]
            var imageBytes: [String: Int] = [:]
            // Warm-up: two rounds (page cache, dynamic loader).
            for round in -2..<runs {
                for offset in 0..<ways.count {
                    let way = ways[(offset + max(round, 0)) % ways.count]
                    let work = directory + "/\(way.name)-\(round)"
                    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
                    let output = work + "/image.iso"
                    let ms = try timeMS {
                        if let tool = way.tool {
                            try subprocess(tool, testCase, work: work, output: output, durable: way.durable)
                        } else {
                            try inProcess(testCase, output: output, durable: way.durable)
                        }
                    }
                    if round >= 0 { samples[way.name, default: []].append(ms) }
                    var info = stat()
                    if stat(output, &info) == 0 { imageBytes[way.name] = Int(info.st_size) }
                    try FileManager.default.removeItem(atPath: work)
                }
            }
            var entry: [String: Any] = [
                "case": testCase.name, "files": testCase.files.count, "input_bytes": testCase.totalBytes, "runs": runs,
            ]
            var summaries: [String: Summary] = [:]
            for way in ways {
                let summary = Summary(samples[way.name]!)
                summaries[way.name] = summary
                entry[way.name] = summary.json.merging([
                    "image_bytes": imageBytes[way.name] ?? 0, "samples": samples[way.name]!,
                ]) { a, _ in a }
            }
            func ratio(_ over: String, _ base: String, _ key: KeyPath<Summary, Double> = \.median) -> Double {
                summaries[over]![keyPath: key] / summaries[base]![keyPath: key]
            }
            entry["ratio_genisoimage_over_in_process"] = ratio("genisoimage", "in-process")
            entry["ratio_xorriso_over_in_process"] = ratio("xorriso", "in-process")
            entry["ratio_p99_genisoimage_over_in_process"] = ratio("genisoimage", "in-process", \.p99)
            entry["ratio_p99_xorriso_over_in_process"] = ratio("xorriso", "in-process", \.p99)
            entry["ratio_genisoimage_over_in_process_durable"] = ratio("genisoimage-durable", "in-process-durable")
            entry["ratio_xorriso_over_genisoimage"] = ratio("xorriso", "genisoimage")
            let median = { (name: String) in String(format: "%.2f", summaries[name]!.median) }
            note(
                "\(testCase.name): in process \(median("in-process")) ms (flushed \(median("in-process-durable"))), "
                    + "genisoimage \(median("genisoimage")) ms (flushed \(median("genisoimage-durable"))), "
                    + "xorriso \(median("xorriso")) ms")
            results.append(entry)
        }
        return ["cases": results, "directory": directory]
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
