// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets for recontextd's parsers and renderers (issue 6), kept out of the main
/// package: they need `-sanitize=fuzzer -parse-as-library`, which `scripts/fuzz` passes:
///
///     swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
///
/// - `fuzz-metadata`: a VM's `<context>` metadata (`ContextMetadata.parse`) and the applied record
///   (`AppliedMetadata.parse`): hostile XML, DTDs, limits.
/// - `fuzz-config`: the daemon configuration (`ConfigurationLoader.parse`): YAML with every error path.
/// - `fuzz-render`: metadata parsed, then rendered in every format (templates, quoting, JSON, YAML)
///   and hashed; the first input byte picks the format.
///
/// Seeds are in `Corpus/<target>/`.
let package = Package(
    name: "recontextd-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "recontextd", path: "..")
    ],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(
            name: "fuzz-metadata",
            dependencies: [.product(name: "RecontextFuzzSupport", package: "recontextd"), "FuzzSupport"],
            path: "Sources/FuzzMetadata"),
        .executableTarget(
            name: "fuzz-config",
            dependencies: [.product(name: "RecontextFuzzSupport", package: "recontextd"), "FuzzSupport"],
            path: "Sources/FuzzConfig"),
        .executableTarget(
            name: "fuzz-render",
            dependencies: [.product(name: "RecontextFuzzSupport", package: "recontextd"), "FuzzSupport"],
            path: "Sources/FuzzRender"),
    ],
    swiftLanguageModes: [.v6]
)
