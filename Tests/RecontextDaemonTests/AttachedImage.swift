import RecontextCore
import TestSupport
import Virt

/// Waiting for a domain to hold a context image: the one poll the live suites share.
enum AttachedImage {
    /// Polls until the first CD-ROM of `name` on `connection` holds a file under `directory`
    /// that pycdlib reads and `accept` takes; returns its path (as the host names it) and the image.
    /// - Parameters:
    ///   - visible: where the test process sees a path of the host (a host-local directory).
    ///   - accept: the domain, the source path and the image read back.
    static func wait(
        on connection: Connection, _ name: String, directory: String, timeout: Duration = .seconds(30),
        every interval: Duration = .milliseconds(50), visible: (String) -> String = { $0 },
        accept: (Domain, String, ContextImageReader.Image) -> Bool
    ) async throws -> (path: String, image: ContextImageReader.Image)? {
        await eventuallyValue(timeout: timeout, every: interval) {
            () -> (path: String, image: ContextImageReader.Image)? in
            guard let domain = try? connection.domain(named: name),
                let source = try? domain.cdroms().first?.sourceFile,
                source.hasPrefix(directory + "/"),
                let image = try? ContextImageReader.read(visible(source)),
                accept(domain, source, image)
            else { return nil }
            return (source, image)
        }
    }

    /// True when the domain's applied state (live) names `source`: the run is over, not only the
    /// live insert.
    static func isRecorded(_ source: String, in domain: Domain) -> Bool {
        guard let applied = try? domain.metadata(namespace: AppliedMetadata.namespaceURI, impact: .live) else {
            return false
        }
        return (try? AppliedMetadata.parse(applied))?.imagePath == source
    }
}
