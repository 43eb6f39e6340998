// MARK: - DomainIdentity

/// A libvirt domain's name and UUID, used to render and to name the domain in errors.
public struct DomainIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The domain name.
    public var name: String
    /// The domain UUID, lower-case canonical form (`8-4-4-4-12` hex digits).
    public var uuid: String

    /// Creates an identity; the UUID is lower-cased.
    /// - Parameters:
    ///   - name: The domain name.
    ///   - uuid: The domain UUID in canonical form, any case.
    public init(name: String, uuid: String) {
        self.name = name
        self.uuid = uuid.lowercased()
    }

    /// `name (uuid)`.
    public var description: String { "\(name) (\(uuid))" }
}
