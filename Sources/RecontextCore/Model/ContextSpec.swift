// MARK: - ContextSpec

/// A VM's desired context data, parsed from its libvirt `<metadata>` (see ``ContextMetadata``).
///
/// Together with the ``HostFacts`` of the host it runs on, a spec renders into the files of the
/// context CD-ROM (see ``ContextRenderer``). Values are already validated when a spec comes from
/// ``ContextMetadata/parse(_:domain:limits:)``; a spec built in code is validated when rendered.
public struct ContextSpec: Sendable, Hashable {
    /// Whether recontextd manages this domain's context CD-ROM.
    ///
    /// The presence of the metadata element is the opt-in, so this is `true` unless the metadata
    /// says `managed="no"` (which keeps the data but leaves the domain alone).
    public var managed: Bool
    /// The output format, or `nil` for the daemon's default (`context.default-format`).
    public var format: ContextFormat?
    /// The instance-id policy, or `nil` for the daemon's default (`context.instance-id`).
    public var instanceID: InstanceIDPolicy?
    /// The guest's hostname, or `nil` for one derived from the domain name.
    public var hostname: String?
    /// The VM's variables, in document order, names unique. They override host variables of the
    /// same name.
    public var variables: [VariableSpec]
    /// Extra files placed in the image, in document order, paths unique.
    public var files: [FileSpec]
    /// cloud-init user data (`user-data`, `openstack/latest/user_data`, OpenNebula `USER_DATA`).
    public var userData: DocumentSpec?
    /// cloud-init network configuration (`network-config`, `openstack/latest/network_data.json`).
    public var networkConfig: DocumentSpec?
    /// cloud-init vendor data (`vendor-data`, `openstack/latest/vendor_data.json`).
    public var vendorData: DocumentSpec?
    /// The target device (`<target dev=...>`) of the context CD-ROM, or `nil` to let the daemon
    /// find it (configuration `context.device.target`, or the CD-ROM recontextd attached before).
    public var device: String?
    /// The volume id of the image; only allowed with ``ContextFormat/files``.
    public var volumeID: String?
    /// Whether recontextd adds the host-guest channel's port to the domain (`channel="add"`);
    /// without it, the channel is used when the domain has the port.
    public var addsGuestChannel = false
    /// Whether the image carries the guest companion's packages under `recontext/guest/`
    /// (`companion="yes"`; see ``CompanionPackages``). Default `false`.
    public var companion: Bool = false

    /// Creates a spec; every part defaults to "nothing given".
    /// - Parameters:
    ///   - managed: Whether recontextd manages the domain.
    ///   - format: The output format, `nil` for the default.
    ///   - instanceID: The instance-id policy, `nil` for the default.
    ///   - hostname: The guest's hostname, `nil` to derive it from the domain name.
    ///   - variables: The VM's variables.
    ///   - files: Extra files.
    ///   - userData: cloud-init user data.
    ///   - networkConfig: cloud-init network configuration.
    ///   - vendorData: cloud-init vendor data.
    ///   - device: The target device of the context CD-ROM.
    ///   - volumeID: The volume id (``ContextFormat/files`` only).
    public init(
        managed: Bool = true,
        format: ContextFormat? = nil,
        instanceID: InstanceIDPolicy? = nil,
        hostname: String? = nil,
        variables: [VariableSpec] = [],
        files: [FileSpec] = [],
        userData: DocumentSpec? = nil,
        networkConfig: DocumentSpec? = nil,
        vendorData: DocumentSpec? = nil,
        device: String? = nil,
        volumeID: String? = nil
    ) {
        self.managed = managed
        self.format = format
        self.instanceID = instanceID
        self.hostname = hostname
        self.variables = variables
        self.files = files
        self.userData = userData
        self.networkConfig = networkConfig
        self.vendorData = vendorData
        self.device = device
        self.volumeID = volumeID
    }

    /// The variable with this name, if any.
    /// - Parameter name: The variable name.
    public func variable(named name: String) -> VariableSpec? {
        variables.first { $0.name == name }
    }
}

// MARK: - VariableSpec

/// One VM variable: `<var name="role">web</var>`.
public struct VariableSpec: Sendable, Hashable {
    /// The name: `[A-Za-z_][A-Za-z0-9_-]*`, at most ``MetadataLimits/maxNameLength`` characters.
    public var name: String
    /// The value, any text.
    public var value: String
    /// Whether the value is secret: it reaches the guest only through templates and `context.sh`
    /// and never appears in logs or in non-secret files.
    public var secret: Bool

    /// Creates a variable.
    /// - Parameters:
    ///   - name: The name.
    ///   - value: The value.
    ///   - secret: Whether the value is secret.
    public init(name: String, value: String, secret: Bool = false) {
        self.name = name
        self.value = value
        self.secret = secret
    }
}

// MARK: - FileContent

/// The content of a file or document: text, or bytes given in base64.
public enum FileContent: Sendable, Hashable {
    /// Text, written to the image as UTF-8.
    case text(String)
    /// Raw bytes (given as `encoding="base64"` in metadata).
    case bytes([UInt8])

    /// The bytes written to the image (UTF-8 for text).
    public var bytes: [UInt8] {
        switch self {
        case .text(let string): Array(string.utf8)
        case .bytes(let bytes): bytes
        }
    }
}

// MARK: - DocumentSpec

/// A cloud-init document (user data, network configuration, vendor data): content and whether it
/// is a template.
public struct DocumentSpec: Sendable, Hashable {
    /// The content.
    public var content: FileContent
    /// Whether the content is a Mustache template rendered with the host and VM variables.
    public var isTemplate: Bool

    /// Creates a document.
    /// - Parameters:
    ///   - content: The content.
    ///   - isTemplate: Whether the content is a template.
    public init(content: FileContent, isTemplate: Bool = false) {
        self.content = content
        self.isTemplate = isTemplate
    }

    /// A text document.
    /// - Parameters:
    ///   - text: The text.
    ///   - isTemplate: Whether the text is a template.
    public static func text(_ text: String, isTemplate: Bool = false) -> DocumentSpec {
        DocumentSpec(content: .text(text), isTemplate: isTemplate)
    }
}

// MARK: - FileSpec

/// An extra file in the image: `<file path="etc/app.conf" mode="0644" template="yes">...</file>`.
public struct FileSpec: Sendable, Hashable {
    /// The path inside the image: relative, `/`-separated, no empty, `.` or `..` components, no
    /// backslashes or control characters; not under `recontext/` and not one of the format's own files.
    public var path: String
    /// The content.
    public var content: FileContent
    /// Whether the content is a Mustache template rendered with the host and VM variables.
    public var isTemplate: Bool
    /// The permission bits (at most `0777`), or `nil` for ``defaultMode``.
    public var mode: UInt16?

    /// The mode of a file that names none: `0644`.
    public static let defaultMode: UInt16 = 0o644

    /// Creates a file.
    /// - Parameters:
    ///   - path: The path inside the image.
    ///   - content: The content.
    ///   - isTemplate: Whether the content is a template.
    ///   - mode: The permission bits, `nil` for ``defaultMode``.
    public init(path: String, content: FileContent, isTemplate: Bool = false, mode: UInt16? = nil) {
        self.path = path
        self.content = content
        self.isTemplate = isTemplate
        self.mode = mode
    }
}
