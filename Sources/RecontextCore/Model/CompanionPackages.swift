// MARK: - CompanionPackages

/// The guest companion's packages that an image carries for a VM whose metadata says
/// `<context companion="yes">`: the `.deb` and the tarball with `install.sh`, under
/// ``imageDirectory`` (`recontext/guest/`), so that cloud-init can install the companion from the
/// context CD-ROM at first boot (see guest/README.md).
///
/// The daemon reads them from `context.companion-directory` (default ``defaultDirectory``) when it
/// starts and on reload; Core only places them. A VM that does not opt in never needs them, so a
/// missing directory is an error only for the VMs that do.
public enum CompanionPackages: Sendable, Hashable {
    /// The packages were read: their files, with paths under ``imageDirectory`` and mode 0644.
    case available(directory: String, files: [RenderedFile])
    /// No package could be read from `directory`, and why (no such directory, no package in it, a
    /// read error).
    case unavailable(directory: String, reason: String)

    /// Where the packages go in the image.
    public static let imageDirectory = "recontext/guest"
    /// Where `make install` and the host package put them: the default of
    /// `context.companion-directory`.
    public static let defaultDirectory = "/usr/share/recontextd/guest"
    /// The file names taken from the directory: the `.deb` and the tarball that `make guest-deb`
    /// and `make guest-tarball` write (`recontext-guest_VERSION_all.deb`,
    /// `recontext-guest-VERSION.tar.gz`).
    public static func isPackageName(_ name: String) -> Bool {
        guard name.hasPrefix("recontext-guest"), !name.contains("/") else { return false }
        return (name.hasPrefix("recontext-guest_") && name.hasSuffix("_all.deb"))
            || (name.hasPrefix("recontext-guest-") && name.hasSuffix(".tar.gz"))
    }

    /// The packages of a directory that was not read (the default of ``PipelineSettings``).
    public static let notRead = CompanionPackages.unavailable(
        directory: defaultDirectory, reason: "the companion directory was not read")

    /// The files to add to the image of a VM that opted in.
    /// - Parameter domain: The domain's name, named in the error.
    /// - Returns: The files, under ``imageDirectory``.
    /// - Throws: ``ContextError`` (``ContextError/Code/missing``, field `companion`) naming the
    ///   domain, the directory and the reason when the packages are unavailable.
    public func files(forDomain domain: String) throws(ContextError) -> [RenderedFile] {
        switch self {
        case .available(_, let files):
            return files
        case .unavailable(let directory, let reason):
            throw ContextError(
                .missing, domain: domain, field: "companion",
                "the guest companion's packages are not available from \(directory): \(reason) (build them with make guest-deb guest-tarball and install them there, or set context.companion-directory)"
            )
        }
    }
}
