/// libFuzzer's driver, entered from each target's `main`.
///
/// SwiftPM links an executable target with `main` defined as `<module>_main` (so that tests can
/// import executables), which keeps libFuzzer's own `main` out of the link. Each target therefore
/// defines `<module>_main` itself (with `@_cdecl`) and hands over to `LLVMFuzzerRunDriver`, the
/// documented entry point of libFuzzer's runtime for programs with their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
private func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// Runs libFuzzer with the process's arguments and `callback` as the fuzz target.
/// - Parameters:
///   - argc: `main`'s argument count.
///   - argv: `main`'s arguments (libFuzzer's options, corpus directories).
///   - callback: the target: called with each input, returns 0.
/// - Returns: libFuzzer's exit status.
public func runLibFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt {
    var count = argc
    var arguments = argv
    return llvmFuzzerRunDriver(&count, &arguments, callback)
}
