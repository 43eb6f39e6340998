// MARK: - MetadataLimits

/// Bounds on what a VM's metadata may ask for, so a hostile or broken spec cannot exhaust the host.
///
/// Enforced while parsing metadata (``ContextMetadata``) and again on the rendered output
/// (``ContextRenderer``). Configured under `limits.*` in the daemon configuration.
public struct MetadataLimits: Sendable, Hashable {
    /// Most `<file>` elements in one spec (`limits.max-files`, default 256).
    public var maxFiles: Int
    /// Largest single file, after base64 decoding and after template rendering
    /// (`limits.max-file-size`, default 1 MiB).
    public var maxFileBytes: Int
    /// Largest sum of all files of one image (`limits.max-total-size`, default 8 MiB).
    public var maxTotalBytes: Int
    /// Longest path of a file inside the image, in UTF-8 bytes (`limits.max-path-length`, default 255).
    public var maxPathLength: Int
    /// Most components (directory levels plus the name) of a file path (`limits.max-path-depth`, default 8).
    public var maxPathComponents: Int
    /// Deepest element nesting of the metadata XML (`limits.max-depth`, default 8; the schema needs 2).
    public var maxDepth: Int
    /// Most `<var>` elements in one spec (`limits.max-variables`, default 1024).
    public var maxVariables: Int
    /// Longest variable name (`limits.max-name-length`, default 128).
    public var maxNameLength: Int
    /// Largest metadata XML document, in UTF-8 bytes (`limits.max-metadata-size`, default 16 MiB).
    public var maxMetadataBytes: Int

    /// Creates limits; every parameter defaults to the documented default.
    /// - Parameters:
    ///   - maxFiles: Most files.
    ///   - maxFileBytes: Largest file.
    ///   - maxTotalBytes: Largest total.
    ///   - maxPathLength: Longest path.
    ///   - maxPathComponents: Most path components.
    ///   - maxDepth: Deepest XML nesting.
    ///   - maxVariables: Most variables.
    ///   - maxNameLength: Longest variable name.
    ///   - maxMetadataBytes: Largest metadata document.
    public init(
        maxFiles: Int = 256,
        maxFileBytes: Int = 1 << 20,
        maxTotalBytes: Int = 8 << 20,
        maxPathLength: Int = 255,
        maxPathComponents: Int = 8,
        maxDepth: Int = 8,
        maxVariables: Int = 1024,
        maxNameLength: Int = 128,
        maxMetadataBytes: Int = 16 << 20
    ) {
        self.maxFiles = maxFiles
        self.maxFileBytes = maxFileBytes
        self.maxTotalBytes = maxTotalBytes
        self.maxPathLength = maxPathLength
        self.maxPathComponents = maxPathComponents
        self.maxDepth = maxDepth
        self.maxVariables = maxVariables
        self.maxNameLength = maxNameLength
        self.maxMetadataBytes = maxMetadataBytes
    }

    /// The defaults listed on each property.
    public static let `default` = MetadataLimits()
}
