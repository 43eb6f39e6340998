import FoundationEssentials
import RecontextCore

#if canImport(Glibc)
    import Glibc
#endif

extension CompanionPackages {
    /// The largest package file read: the companion's packages are a few KiB; anything this big
    /// is not one of them.
    static let maxFileBytes = 4 << 20

    /// Reads the guest companion's packages (``CompanionPackages/isPackageName(_:)``) from a
    /// directory, for the VMs whose metadata says `companion="yes"`.
    ///
    /// Never throws: a directory that is missing, unreadable or holds no package gives
    /// ``CompanionPackages/unavailable(directory:reason:)``, which fails only the runs of the VMs
    /// that opted in, naming the domain, the directory and the reason. Blocking (file reads): the
    /// daemon calls it while it builds its ``Runtime``, off the cooperative pool.
    /// - Parameter directory: `context.companion-directory`.
    /// - Returns: The packages, as files under ``CompanionPackages/imageDirectory`` with mode 0644.
    public static func load(from directory: String) -> CompanionPackages {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            let missing = !FileManager.default.fileExists(atPath: directory)
            return .unavailable(
                directory: directory, reason: missing ? "no such directory" : "cannot list it: \(error)")
        }
        var files: [RenderedFile] = []
        for name in names.filter(isPackageName).sorted() {
            let path = directory + "/" + name
            // lstat, not FileManager's attributes: their value types differ between Foundation and
            // FoundationEssentials (the size is an Int in one, not in the other). lstat also keeps a
            // FIFO or a link named like a package from being opened.
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            guard info.st_size <= maxFileBytes else {
                return .unavailable(directory: directory, reason: "\(name) is larger than \(maxFileBytes) bytes")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                return .unavailable(directory: directory, reason: "cannot read \(name)")
            }
            files.append(RenderedFile(path: imageDirectory + "/" + name, contents: Array(data), mode: 0o644))
        }
        guard !files.isEmpty else {
            return .unavailable(
                directory: directory,
                reason: "it holds no recontext-guest_VERSION_all.deb or recontext-guest-VERSION.tar.gz")
        }
        return .available(directory: directory, files: files)
    }
}
