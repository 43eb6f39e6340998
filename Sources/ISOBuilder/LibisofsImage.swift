internal import CLibisofs

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - LibisofsImage

/// An `IsoImage` (libisofs' in-memory tree) being filled from an ``ImagePlan``.
///
/// Owns one reference to the image and drops it in `deinit`. Directory pointers handed out by
/// ``addDirectory(_:in:)`` belong to the image and are valid while it lives. Use only inside
/// ``Libisofs/withLibrary(_:)``; not `Sendable`, never leaves the build.
final class LibisofsImage {
    /// The `IsoImage *`.
    let handle: OpaquePointer
    /// Time recorded on every node.
    private let time: time_t

    /// Creates an empty image with the volume id (also the volume set id) and a root directory.
    ///
    /// - Parameters:
    ///   - volumeID: The validated volume id.
    ///   - time: Seconds since the epoch for every node.
    ///   - rootMode: Permission bits of the root directory.
    init(volumeID: String, time: Int, rootMode: mode_t) throws(ISOBuilderError) {
        var image: OpaquePointer?
        try Libisofs.check(iso_image_new(volumeID, &image), "create an image")
        guard let image else {
            throw ISOBuilderError(code: .libisofs, message: "libisofs returned no image from iso_image_new")
        }
        self.handle = image
        self.time = time_t(time)
        // Refuse, rather than silently truncate, over-long names (validation already rules them out).
        try Libisofs.check(iso_image_set_truncate_mode(image, 0, 255), "set the name truncation mode")
        setAttributes(of: iso_image_get_root(image), mode: rootMode)
    }

    deinit {
        iso_image_unref(handle)
    }

    /// The root directory (`IsoDir *`, owned by the image).
    var root: OpaquePointer {
        iso_image_get_root(handle)
    }

    /// Adds a directory.
    ///
    /// - Parameters:
    ///   - directory: The planned directory.
    ///   - parent: The parent `IsoDir *`.
    /// - Returns: The new `IsoDir *`, owned by the image.
    func addDirectory(_ directory: ImagePlan.Directory, in parent: OpaquePointer) throws(ISOBuilderError)
        -> OpaquePointer
    {
        var node: OpaquePointer?
        try Libisofs.check(
            iso_image_add_new_dir(handle, parent, directory.name, &node),
            "add directory '\(directory.path)'",
            path: directory.path
        )
        guard let node else {
            throw ISOBuilderError(
                code: .libisofs, message: "libisofs returned no directory for '\(directory.path)'", path: directory.path
            )
        }
        setAttributes(of: node, mode: directory.mode)
        return node
    }

    /// Adds a regular file whose contents libisofs reads from a malloc'ed copy (a memory stream owns
    /// and frees it).
    ///
    /// - Parameters:
    ///   - file: The planned file.
    ///   - parent: The parent `IsoDir *`.
    func addFile(_ file: ImagePlan.File, in parent: OpaquePointer) throws(ISOBuilderError) {
        let count = file.contents.count
        // malloc(0) may return NULL, which iso_memory_stream_new refuses; one spare byte avoids that.
        guard let buffer = malloc(max(count, 1))?.assumingMemoryBound(to: UInt8.self) else {
            throw ISOBuilderError(
                code: .systemCall,
                message: "cannot allocate \(count) bytes for '\(file.path)'",
                path: file.path,
                systemErrno: ENOMEM
            )
        }
        file.contents.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { buffer.update(from: base, count: count) }
        }
        var stream: UnsafeMutablePointer<IsoStream>?
        let created = iso_memory_stream_new(buffer, count, &stream)
        guard created >= 0, let stream else {
            free(buffer)
            throw Libisofs.error(
                status: created < 0 ? created : -1, step: "create a memory stream for '\(file.path)'", path: file.path)
        }
        // From here the stream owns the buffer. On success the new file node takes the stream's
        // reference; on failure it does not, so it is dropped here.
        var node: OpaquePointer?
        let added = iso_image_add_new_file(handle, parent, file.name, stream, &node)
        guard added >= 0, let node else {
            if added < 0 { iso_stream_unref(stream) }
            throw Libisofs.error(status: added < 0 ? added : -1, step: "add file '\(file.path)'", path: file.path)
        }
        setAttributes(of: node, mode: file.mode)
    }

    /// Sets permission bits, owner root:root and the fixed time on a node (`IsoNode *`).
    private func setAttributes(of node: OpaquePointer, mode: mode_t) {
        iso_node_set_permissions(node, mode)
        iso_node_set_uid(node, 0)
        iso_node_set_gid(node, 0)
        iso_node_set_mtime(node, time)
        iso_node_set_atime(node, time)
        iso_node_set_ctime(node, time)
    }
}
