import FoundationEssentials
import ISOBuilder
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

/// The pipeline's ``ImageStore``: images built in process by ``ISOBuilder`` into one directory.
///
/// The directory is created with mode 0750 when missing and is never reached through a symlink;
/// images are written atomically (temporary name, rename: complete before they have their name)
/// with the configured mode and group, but not flushed: the pipeline inserts the image first and
/// calls ``flush(path:)`` (fsync of the file and the directory) before the persistent definition
/// names it. Images are removed with `unlinkat` relative to the directory.
public struct ISOImageStore: ImageStore {
    public let directory: String
    /// Mode of image files (default 0640: the QEMU user's group may read, nobody else).
    public let mode: mode_t
    /// Group owning image files, or `nil` to keep the daemon's.
    public let group: gid_t?
    /// The builder (size limit, SOURCE_DATE_EPOCH).
    public let builder: ISOBuilder

    /// Creates a store; call ``prepare()`` before use.
    public init(
        directory: String, mode: mode_t = 0o640, group: gid_t? = nil,
        maxImageBytes: Int = ISOBuilder.defaultMaxImageBytes
    ) {
        self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        self.mode = mode
        self.group = group
        self.builder = ISOBuilder(maxImageBytes: maxImageBytes)
    }

    /// Creates the directory (mode 0750, parents as needed) and checks that it is a real
    /// directory, not a symlink.
    /// - Throws: ``ImageStoreError`` naming the directory and the cause.
    public func prepare() throws(ImageStoreError) {
        var info = stat()
        if lstat(directory, &info) != 0 {
            guard errno == ENOENT else { throw Self.systemError("cannot inspect image directory", directory) }
            try Self.makeDirectories(directory)
            guard lstat(directory, &info) == 0 else {
                throw Self.systemError("cannot inspect image directory", directory)
            }
            if let group { _ = chown(directory, UInt32.max, group) }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ImageStoreError(
                "image directory \(directory) is not a directory (symlinks are not followed)", isTransient: false)
        }
    }

    public func write(_ context: RenderedContext, record: RenderedFile, name: String) async throws(ImageStoreError)
        -> String
    {
        guard Self.isPlainName(name) else { throw ImageStoreError("invalid image name \(name)", isTransient: false) }
        var image = ISOImage(volumeID: context.volumeID, entries: [])
        for file in context.files + [record] {
            image.addFile(at: file.path, contents: file.contents, mode: mode_t(file.mode))
        }
        let path = directory + "/" + name
        let finished = image
        let builder = self.builder
        let mode = self.mode
        let group = self.group
        do {
            _ = try await Blocking.run { () throws(ISOBuilderError) -> Int in
                try builder.writeImage(finished, to: path, mode: mode, group: group, durable: false)
            }
        } catch {
            throw ImageStoreError("cannot build \(path): \(error)", isTransient: error.isTransient)
        }
        return path
    }

    public func makeDurable(path: String) async throws(ImageStoreError) {
        guard relativeName(path) != nil else {
            throw ImageStoreError("refusing to flush \(path): not directly in \(directory)", isTransient: false)
        }
        do {
            try await Blocking.run { () throws(ISOBuilderError) in try ISOBuilder.makeDurable(path) }
        } catch {
            throw ImageStoreError("cannot flush \(path) to disk: \(error)", isTransient: error.isTransient)
        }
    }

    public func remove(path: String) async throws(ImageStoreError) {
        guard let name = relativeName(path) else {
            throw ImageStoreError("refusing to remove \(path): not directly in \(directory)", isTransient: false)
        }
        let directory = self.directory
        try await Blocking.run { () throws(ImageStoreError) in
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw Self.systemError("cannot open image directory", directory) }
            defer { close(fd) }
            if unlinkat(fd, name, 0) != 0 && errno != ENOENT {
                throw Self.systemError("cannot remove image", path)
            }
        }
    }

    public func exists(path: String) async -> Bool {
        guard relativeName(path) != nil else { return false }
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    public func storedImages() async throws(ImageStoreError) -> [StoredImage] {
        let directory = self.directory
        return try await Blocking.run { () throws(ImageStoreError) -> [StoredImage] in
            guard let handle = opendir(directory) else {
                throw Self.systemError("cannot list image directory", directory)
            }
            defer { closedir(handle) }
            var images: [StoredImage] = []
            while let entry = readdir(handle) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
                }
                // Our images, and the temporaries a killed write left behind (collected after the grace).
                guard ImageNaming.parse(name) != nil || ImageNaming.parseTemporary(name) != nil else { continue }
                var info = stat()
                guard fstatat(dirfd(handle), name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFREG
                else { continue }
                let modified = Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec))
                images.append(StoredImage(name: name, path: directory + "/" + name, modified: modified))
            }
            return images.sorted { $0.name < $1.name }
        }
    }

    // MARK: - Helpers

    /// The file name of `path` when it lies directly in the directory.
    private func relativeName(_ path: String) -> String? {
        let prefix = directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let name = String(path.dropFirst(prefix.count))
        return Self.isPlainName(name) ? name : nil
    }

    private static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    /// `mkdir -p` with mode 0750 for each directory it creates (a parent that exists is kept as it is).
    private static func makeDirectories(_ path: String) throws(ImageStoreError) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o750) == 0 || errno == EEXIST { continue }
            throw systemError("cannot create image directory", prefix)
        }
    }

    private static func systemError(_ what: String, _ path: String) -> ImageStoreError {
        let code = errno
        let transient = [ENOSPC, EDQUOT, EIO, EMFILE, ENFILE, EINTR, EAGAIN, ENOMEM].contains(code)
        return ImageStoreError("\(what) \(path): \(String(cString: strerror(code)))", isTransient: transient)
    }
}
