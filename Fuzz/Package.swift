// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets for recontextd's parsers and renderers (issue 6), kept out of the main
/// package: they need `-sanitize=fuzzer -parse-as-library`, which `scripts/fuzz` passes, with
/// AddressSanitizer (`FUZZ_ASAN=0` leaves it out and builds in `.build`):
///
///     swift build --package-path Fuzz -c release --scratch-path Fuzz/.build-asan \
///         --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
///
/// Swift's flag names both sanitizers: a later `-sanitize=` replaces an earlier one, so
/// `--sanitize=address -Xswiftc -sanitize=fuzzer` would leave the Swift code without ASan.
///
/// - `fuzz-metadata`: a VM's `<context>` metadata (`ContextMetadata.parse`) and the applied record
///   (`AppliedMetadata.parse`): hostile XML, DTDs, limits.
/// - `fuzz-config`: the daemon configuration (`ConfigurationLoader.parse`): YAML with every error path.
/// - `fuzz-render`: metadata parsed, then rendered in every format (templates, quoting, JSON, YAML)
///   and hashed; the first input byte picks the format.
/// - `fuzz-guest`: what a hostile guest writes to the host-guest channel, through the framer, the
///   rate guard and the protocol parser.
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
            name: "fuzz-guest",
            dependencies: [.product(name: "RecontextFuzzSupport", package: "recontextd"), "FuzzSupport"],
            path: "Sources/FuzzGuest"),
        .executableTarget(
            name: "fuzz-render",
            dependencies: [.product(name: "RecontextFuzzSupport", package: "recontextd"), "FuzzSupport"],
            path: "Sources/FuzzRender"),
    ],
    swiftLanguageModes: [.v6]
)
