// swift-tools-version:6.1
import PackageDescription

/// recontextd: rebuilds a VM's context CD-ROM with this host's facts whenever the VM arrives.
///
/// Dependencies point one way: C modules → wrappers (Virt, ISOBuilder) → RecontextDaemon (glue);
/// AtomicFile (the one way a file is written: temporary name, fsync, rename) imports only Glibc and
/// serves ISOBuilder and the glue;
/// RecontextCore (model and pipeline) imports neither C nor the wrappers. CSystemd (journal and
/// sd_notify, two calls) is small enough that the glue imports it directly, as `internal import`.
let package = Package(
    name: "recontextd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "recontextd", targets: ["recontextd"]),
        // For the benchmark package in Benchmarks/ (a separate package, so that `swift build` and
        // `swift test` here never build it). Not an API promise.
        .library(
            name: "RecontextBenchmarkSupport", targets: ["RecontextDaemon", "ISOBuilder", "RecontextCore", "Virt"]),
        // For the fuzz targets in Fuzz/ (a separate package built with -sanitize=fuzzer by
        // scripts/fuzz). Not an API promise.
        .library(name: "RecontextFuzzSupport", targets: ["RecontextCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // MARK: - C libraries (Modules/)
        .systemLibrary(
            name: "CLibvirt",
            path: "Modules/CLibvirt",
            pkgConfig: "libvirt",
            providers: [.apt(["libvirt-dev"])]
        ),
        .systemLibrary(
            name: "CLibisofs",
            path: "Modules/CLibisofs",
            pkgConfig: "libisofs-1",
            providers: [.apt(["libisofs-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            path: "Modules/CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),

        // MARK: - Safe wrappers
        /// Guards Foundation's XMLParser against inputs that crash it; shared by every XML reader.
        .target(name: "XMLSafety"),
        .target(
            name: "Virt",
            dependencies: ["CLibvirt", "XMLSafety"]
        ),
        /// Writes a file so that it appears only when complete; every file recontextd writes goes through it.
        .target(name: "AtomicFile"),
        .target(
            name: "ISOBuilder",
            dependencies: ["CLibisofs", "AtomicFile"]
        ),

        // MARK: - Product
        .target(
            name: "RecontextCore",
            dependencies: [
                "XMLSafety",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        .target(
            name: "RecontextDaemon",
            dependencies: [
                "Virt",
                "ISOBuilder",
                "AtomicFile",
                "RecontextCore",
                "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "recontextd",
            dependencies: [
                "RecontextDaemon",
                "ISOBuilder",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: - Tests
        .target(
            name: "TestSupport",
            dependencies: ["RecontextCore"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "AtomicFileTests", dependencies: ["AtomicFile", "TestSupport"]),
        .testTarget(name: "VirtTests", dependencies: ["Virt", "XMLSafety", "TestSupport"]),
        .testTarget(name: "ISOBuilderTests", dependencies: ["ISOBuilder", "TestSupport"]),
        .testTarget(name: "RecontextCoreTests", dependencies: ["RecontextCore", "XMLSafety", "TestSupport"]),
        .testTarget(
            name: "RecontextDaemonTests",
            dependencies: [
                "RecontextDaemon", "Virt", "ISOBuilder", "AtomicFile", "RecontextCore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
