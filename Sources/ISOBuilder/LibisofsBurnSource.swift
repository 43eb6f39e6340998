internal import CLibisofs

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - LibisofsBurnSource

/// The image as a stream of bytes: the `struct burn_source` from `iso_image_create_burn_source`.
///
/// Creating it computes the layout (so ``size`` is known at once) and starts libisofs' writer thread,
/// which fills a ring buffer that ``read(into:)`` drains. `deinit` calls the source's `free_data`
/// (which stops and joins the writer thread if it is still running and drops libisofs' reference to
/// the image) and then frees the struct itself, as libburn's `burn_source_free` would.
/// Use only inside ``Libisofs/withLibrary(_:)``.
final class LibisofsBurnSource {
    /// The `struct burn_source *`.
    private let source: UnsafeMutablePointer<burn_source>

    /// Lays out `image` with `options` and starts writing it.
    init(image: LibisofsImage, options: LibisofsWriteOptions) throws(ISOBuilderError) {
        var source: UnsafeMutablePointer<burn_source>?
        try Libisofs.check(
            iso_image_create_burn_source(image.handle, options.handle, &source),
            "lay out the image"
        )
        guard let source else {
            throw ISOBuilderError(code: .libisofs, message: "libisofs returned no burn source")
        }
        self.source = source
    }

    deinit {
        source.pointee.free_data?(source)
        free(source)
    }

    /// The exact size of the image in bytes (a multiple of 2048).
    var size: Int {
        Int(source.pointee.get_size?(source) ?? 0)
    }

    /// Reads the next bytes of the image, filling `buffer` completely unless the image ends.
    ///
    /// - Parameter buffer: Where to put the bytes; at most `Int32.max` bytes are read per call.
    /// - Returns: The number of bytes read; 0 at the end of the image.
    /// - Throws: ``ISOBuilderError`` with libisofs' queued messages if the writer thread failed.
    func read(into buffer: UnsafeMutableBufferPointer<UInt8>) throws(ISOBuilderError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let count = Int32(clamping: buffer.count)
        // Version 0 sources have `read`; later versions set it to NULL and provide `read_xt`.
        let result: Int32
        if let read = source.pointee.read {
            result = read(source, base, count)
        } else if let readXT = source.pointee.read_xt {
            result = readXT(source, base, count)
        } else {
            throw ISOBuilderError(code: .libisofs, message: "libisofs burn source has no read function")
        }
        guard result >= 0 else {
            let details = Libisofs.takeMessages()
            throw ISOBuilderError(
                code: .libisofs,
                message: "libisofs failed while writing the image"
                    + (details.isEmpty ? "" : ": " + details.joined(separator: "; ")),
                libisofsStatus: result
            )
        }
        return Int(result)
    }

    /// Reads the whole image into a new array of exactly ``size`` bytes.
    ///
    /// - Throws: ``ISOBuilderError`` if libisofs fails or delivers a different number of bytes.
    func readAll() throws(ISOBuilderError) -> [UInt8] {
        let size = self.size
        var failure: ISOBuilderError?
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            initialized = 0
            do throws(ISOBuilderError) {
                while initialized < size {
                    let chunk = UnsafeMutableBufferPointer(
                        rebasing: buffer[initialized..<min(size, initialized + (1 << 24))])
                    let count = try read(into: chunk)
                    if count == 0 { break }
                    initialized += count
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        guard bytes.count == size else {
            throw ISOBuilderError(
                code: .libisofs,
                message: "libisofs delivered \(bytes.count) bytes of an image announced as \(size) bytes"
            )
        }
        return bytes
    }
}
