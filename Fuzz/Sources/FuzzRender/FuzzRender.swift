import FuzzSupport
import RecontextCore

/// libFuzzer entry point: metadata parsed, then rendered. The first byte picks the format and
/// the instance-id policy; the rest is the `<context>` XML. Any input that parses must render or
/// give a `ContextError`, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRender(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let formats: [ContextFormat] = [.noCloud, .configDrive, .openNebula, .files]
    let domain = DomainIdentity(name: "fuzz-vm", uuid: "0b9e4a2c-3f1d-4c5e-8a7b-9c0d1e2f3a4b")
    let limits = MetadataLimits(
        maxFiles: 8, maxFileBytes: 4096, maxTotalBytes: 16384, maxPathLength: 64, maxPathComponents: 4, maxDepth: 6,
        maxVariables: 16, maxNameLength: 32, maxMetadataBytes: 65536)
    guard let spec = try? ContextMetadata.parse(utf8: bytes, domain: domain, limits: limits) else { return 0 }
    let host = HostFacts(
        name: "hv-fuzz", variables: ["monitoring_endpoint": "http://m:9090", "zone": "z'1\"", "token": "s3cr3t"],
        secretVariables: ["token"])
    let renderer = ContextRenderer(limits: limits)
    let format = formats[Int(selector) % formats.count]
    let policy: InstanceIDPolicy = selector & 0x80 == 0 ? .stable : .perHost
    if let context = try? renderer.render(
        spec: spec, host: host, domain: domain, defaultFormat: format, defaultInstanceID: policy)
    {
        let record = ContextRenderer.generationRecord(
            generation: 1, host: host.name, contentHash: context.contentHash, domain: domain)
        // The record must read back as written.
        guard let parsed = ContextRenderer.parseGenerationRecord(record.contents),
            parsed.contentHash == context.contentHash
        else {
            fatalError("the generation record does not read back")
        }
    }
    return 0
}

/// The program's entry point (see `FuzzSupport.runLibFuzzer`).
@_cdecl("fuzz_render_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzRender)
}
