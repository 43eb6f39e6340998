// swift-tools-version:6.1
import PackageDescription

/// recontextd: rebuilds a VM's context CD-ROM with this host's facts whenever the VM arrives.
///
/// Dependencies point one way (SwiftPM refuses cycles, so `swift build` proves it):
///
///     C modules (Modules/)        CLibvirt, CLibisofs, CLibxml2, CLibyaml, CLibcrypto, CSystemd
///     AtomicFile, Threads         the one way a file is written; named threads, a pthread lock
///     wrappers                    XML (libxml2), YAML (libyaml), Digest (libcrypto), Virt (libvirt),
///                                 ISOBuilder (libisofs, AtomicFile)
///     RecontextCore               model, metadata, formats, templates, pipeline, DomainCoordinator;
///                                 speaks of "a hypervisor", imports no C module and, of the wrappers,
///                                 only XML, YAML and Digest
///     RecontextConfiguration      the configuration file (keys, loader, validation) → Core's types
///     RecontextHook               the libvirt qemu hook: configuration and XML only
///     RecontextDaemon             adapters (libvirt, libisofs, files), services, journal, metrics
///     recontextd                  the executable: argument-parser commands only
///
/// C modules are imported with `internal import`, so no C type leaks from a wrapper. No target
/// imports Foundation, nor does any dependency (FoundationEssentials at most): Foundation, its
/// internationalization and ICU would add ~10 MiB to the idle daemon (BENCHMARKS.md); InstallTests
/// checks that the binary does not link them.
let package = Package(
    name: "recontextd",
    products: [
        .executable(name: "recontextd", targets: ["recontextd"]),
        // For the benchmark package in Benchmarks/ (a separate package, so that `swift build` and
        // `swift test` here never build it). Not an API promise.
        .library(
            name: "RecontextBenchmarkSupport",
            targets: ["RecontextDaemon", "RecontextConfiguration", "ISOBuilder", "RecontextCore", "Virt"]),
        // For the fuzz targets in Fuzz/ (a separate package built with -sanitize=fuzzer by
        // scripts/fuzz). Not an API promise.
        .library(name: "RecontextFuzzSupport", targets: ["RecontextCore", "RecontextConfiguration"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
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
            name: "CLibxml2",
            path: "Modules/CLibxml2",
            pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]
        ),
        .systemLibrary(
            name: "CLibyaml",
            path: "Modules/CLibyaml",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CLibcrypto",
            path: "Modules/CLibcrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            path: "Modules/CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),

        // MARK: - Safe wrappers
        /// The one XML reader (libxml2: no DTDs, no entities, bounded) and escaper.
        .target(
            name: "XML",
            dependencies: ["CLibxml2"]
        ),
        /// The one YAML reader (libyaml events composed into a tree: marks, unique keys, bounded
        /// depth and aliases) and emitter.
        .target(
            name: "YAML",
            dependencies: ["CLibyaml"]
        ),
        /// Named detached threads, a pthread lock and a condition: the little of Foundation's
        /// threading recontextd used, on pthreads (the daemon links no Foundation).
        .target(name: "Threads"),
        .target(
            name: "Virt",
            dependencies: ["CLibvirt", "XML", "Threads"]
        ),
        /// SHA-256 from libcrypto (which libvirt loads anyway): the content hash of every image.
        .target(name: "Digest", dependencies: ["CLibcrypto"]),
        /// Writes a file so that it appears only when complete; every file recontextd writes goes through it.
        .target(name: "AtomicFile"),
        .target(
            name: "ISOBuilder",
            dependencies: ["CLibisofs", "AtomicFile", "Threads"]
        ),

        // MARK: - Product
        .target(
            name: "RecontextCore",
            dependencies: [
                "XML",
                .product(name: "Logging", package: "swift-log"),
                "Digest",
                "YAML",
            ]
        ),
        .target(
            name: "RecontextConfiguration",
            dependencies: [
                "RecontextCore",
                .product(name: "Logging", package: "swift-log"),
                "YAML",
            ]
        ),
        .target(
            name: "RecontextHook",
            dependencies: ["RecontextConfiguration", "XML"]
        ),
        .target(
            name: "RecontextDaemon",
            dependencies: [
                "Virt",
                "ISOBuilder",
                "AtomicFile",
                "Threads",
                "RecontextCore",
                "RecontextConfiguration",
                "RecontextHook",
                "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "recontextd",
            dependencies: [
                "RecontextDaemon",
                "RecontextConfiguration",
                "RecontextHook",
                "ISOBuilder",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: - Tests
        .target(
            name: "TestSupport",
            dependencies: ["RecontextCore", "XML"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "XMLTests", dependencies: ["XML"]),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"]),
        .testTarget(name: "DigestTests", dependencies: ["Digest", "TestSupport"]),
        .testTarget(name: "AtomicFileTests", dependencies: ["AtomicFile", "TestSupport"]),
        .testTarget(name: "VirtTests", dependencies: ["Virt", "TestSupport"]),
        .testTarget(name: "ISOBuilderTests", dependencies: ["ISOBuilder", "Digest", "TestSupport"]),
        .testTarget(
            name: "RecontextCoreTests",
            dependencies: ["RecontextCore", "RecontextConfiguration", "YAML", "TestSupport"]),
        .testTarget(name: "RecontextConfigurationTests", dependencies: ["RecontextConfiguration", "TestSupport"]),
        .testTarget(
            name: "RecontextDaemonTests",
            dependencies: [
                "RecontextDaemon", "RecontextConfiguration", "RecontextHook", "Virt", "ISOBuilder", "AtomicFile",
                "RecontextCore", "XML", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
