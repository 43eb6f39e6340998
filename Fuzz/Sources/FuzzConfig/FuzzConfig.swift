import FuzzSupport
import RecontextConfiguration
import RecontextCore

/// libFuzzer entry point: the daemon configuration file. Any input must give a configuration or
/// `ConfigurationErrors`, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let configuration = try? ConfigurationLoader.parse(yaml: text, file: "fuzz.yaml", hostName: "fuzz-host") {
        // What `run` derives from it.
        _ = PipelineSettings(configuration: configuration)
    }
    return 0
}

/// The program's entry point (see `FuzzSupport.runLibFuzzer`).
@_cdecl("fuzz_config_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzConfig)
}
