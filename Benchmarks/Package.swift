// swift-tools-version:6.1
import PackageDescription

/// The benchmark suite of recontextd (issue 7), kept out of the main package so that `swift build`
/// and `swift test` there never build it. Run everything with `sudo scripts/bench`.
///
/// `recontextd-bench` holds the in-process benchmarks (image building against genisoimage and
/// xorriso; bookkeeping, memory and leak checks with 1000 domains on libvirt's test driver).
/// The real-QEMU benchmarks (pipeline phases, migration, storms) are driven by
/// `Benchmarks/real_hosts.py` against the release `recontextd` binary built from this package.
let package = Package(
    name: "recontextd-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "recontextd", path: ".."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "recontextd-bench",
            dependencies: [
                .product(name: "RecontextBenchmarkSupport", package: "recontextd"),
                .product(name: "Logging", package: "swift-log"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
