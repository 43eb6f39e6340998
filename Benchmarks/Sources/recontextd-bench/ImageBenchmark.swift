import Foundation
import ISOBuilder

#if canImport(Glibc)
    import Glibc
#endif

/// Benchmark 1: building an image in process against `genisoimage -R -J` and
/// `xorriso -as mkisofs -R -J` as subprocesses, counted the same way: inputs in, image file out.
///
/// - in process: `ISOBuilder.writeImage` from memory to a file (temporary name, fsync, rename);
/// - subprocesses: write the input files into a fresh temporary directory, run the tool (spawned
///   with `posix_spawn`, the cheapest way to start it), then open, fsync and read the image.
/// Runs are interleaved (each round runs every tool once, in a rotating order), so drift in the
/// machine's load hits all three alike.
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

    static func inProcess(_ testCase: Case, output: String) throws {
        var image = ISOImage(volumeID: "cidata", entries: [])
        for file in testCase.files { image.addFile(at: file.path, contents: file.bytes) }
        _ = try ISOBuilder().writeImage(image, to: output, mode: 0o644)
    }

    /// In process, with exactly the subprocesses' file work: the image built in memory, then written
    /// straight to its final name and `fsync`ed (no temporary name, rename or directory `fsync`).
    /// It isolates what the daemon's atomic, durable write costs on top.
    static func inProcessPlainFile(_ testCase: Case, output: String) throws {
        var image = ISOImage(volumeID: "cidata", entries: [])
        for file in testCase.files { image.addFile(at: file.path, contents: file.bytes) }
        let bytes = try ISOBuilder().makeImage(image)
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("open \(output): errno \(errno)") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else { throw BenchError("write \(output): errno \(errno)") }
    }

    static func subprocess(_ tool: [String], _ testCase: Case, work: String, output: String) throws {
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
        // Image file out: durable and read back (as a caller that attaches or ships it would).
        let fd = open(output, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("open \(output): errno \(errno)") }
        fsync(fd)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)
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

    static func run(runs: Int, directory: String) throws -> [String: Any] {
        let tools: [(String, [String]?)] = [
            ("in-process", nil),
            ("in-process-plain-file", []),
            ("genisoimage", ["genisoimage"]),
            ("xorriso", ["xorriso", "-as", "mkisofs"]),
        ]
        var results: [[String: Any]] = []
        for testCase in cases {
            var samples: [String: [Double]] = [:]
            var imageBytes: [String: Int] = [:]
            // Warm-up: one of each (page cache, dynamic loader).
            for round in -2..<runs {
                for offset in 0..<tools.count {
                    let (name, tool) = tools[(offset + max(round, 0)) % tools.count]
                    let work = directory + "/\(name)-\(round)"
                    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
                    let output = work + "/image.iso"
                    let ms = try timeMS {
                        switch tool {
                        case nil: try inProcess(testCase, output: output)
                        case let tool? where tool.isEmpty: try inProcessPlainFile(testCase, output: output)
                        case let tool?: try subprocess(tool, testCase, work: work, output: output)
                        }
                    }
                    if round >= 0 { samples[name, default: []].append(ms) }
                    var info = stat()
                    if stat(output, &info) == 0 { imageBytes[name] = Int(info.st_size) }
                    try FileManager.default.removeItem(atPath: work)
                }
            }
            var entry: [String: Any] = [
                "case": testCase.name, "files": testCase.files.count, "input_bytes": testCase.totalBytes, "runs": runs,
            ]
            var summaries: [String: Summary] = [:]
            for (name, _) in tools {
                let summary = Summary(samples[name]!)
                summaries[name] = summary
                entry[name] = summary.json.merging(["image_bytes": imageBytes[name] ?? 0, "samples": samples[name]!]) {
                    a, _ in a
                }
            }
            let base = summaries["in-process"]!
            entry["ratio_genisoimage_over_in_process"] = summaries["genisoimage"]!.median / base.median
            entry["ratio_xorriso_over_in_process"] = summaries["xorriso"]!.median / base.median
            entry["ratio_p99_genisoimage_over_in_process"] = summaries["genisoimage"]!.p99 / base.p99
            entry["ratio_p99_xorriso_over_in_process"] = summaries["xorriso"]!.p99 / base.p99
            entry["ratio_genisoimage_over_in_process_plain_file"] =
                summaries["genisoimage"]!.median / summaries["in-process-plain-file"]!.median
            entry["ratio_xorriso_over_genisoimage"] = summaries["xorriso"]!.median / summaries["genisoimage"]!.median
            note(
                "\(testCase.name): in process \(String(format: "%.2f", base.median)) ms, genisoimage "
                    + "\(String(format: "%.2f", summaries["genisoimage"]!.median)) ms, xorriso \(String(format: "%.2f", summaries["xorriso"]!.median)) ms"
            )
            results.append(entry)
        }
        return ["cases": results, "directory": directory]
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
