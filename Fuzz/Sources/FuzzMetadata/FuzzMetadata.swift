import FuzzSupport
import RecontextCore

/// libFuzzer entry point: a VM's context metadata and the applied record, as libvirt would hand
/// them over. Any input must give a spec or a `ContextError`, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMetadata(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let domain = DomainIdentity(name: "fuzz-vm", uuid: "0b9e4a2c-3f1d-4c5e-8a7b-9c0d1e2f3a4b")
    // Small limits so that the fuzzer reaches every limit check quickly.
    let limits = MetadataLimits(
        maxFiles: 8, maxFileBytes: 4096, maxTotalBytes: 16384, maxPathLength: 64, maxPathComponents: 4, maxDepth: 6,
        maxVariables: 16, maxNameLength: 32, maxMetadataBytes: 65536)
    _ = try? ContextMetadata.parse(utf8: bytes, domain: domain, limits: limits)
    _ = try? ContextMetadata.parse(utf8: bytes, domain: domain, limits: .default)
    _ = try? AppliedMetadata.parse(String(decoding: bytes, as: UTF8.self))
    return 0
}

/// The program's entry point (see `FuzzSupport.runLibFuzzer`).
@_cdecl("fuzz_metadata_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzMetadata)
}
