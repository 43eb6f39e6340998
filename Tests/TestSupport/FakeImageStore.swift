import Foundation
import RecontextCore
import Synchronization

/// An in-memory ``ImageStore`` for unit tests of the pipeline logic.
///
/// Images are kept as records (the rendered context and generation record given to
/// ``write(_:record:name:)``), keyed by path, with a modification time. Every write and removal
/// is recorded in order; writes and removals can fail on demand (transient, like a full disk, or
/// permanent); a hook sees each removal as it happens (to check what the domain has attached at
/// that moment).
///
/// Like the daemon's store it normalises the directory (no trailing slash), refuses to remove a
/// path that is not directly in the directory, treats a missing file as removed, and lists only
/// names that ``ImageNaming`` accepts.
///
/// - Important: For unit tests of pipeline logic only. Thread-safe; the state is behind one
///   `Mutex`, never held while the hook runs.
public final class FakeImageStore: ImageStore {
    // MARK: - Types

    /// An image held by the store.
    public struct Image: Sendable, Hashable {
        /// The full path.
        public var path: String
        /// The rendered content, or `nil` for a seeded file.
        public var context: RenderedContext?
        /// The generation record, or `nil` for a seeded file.
        public var record: RenderedFile?
        /// The modification time.
        public var modified: Date

        /// The generation record, parsed.
        public var generation: UInt64? {
            record.flatMap { ContextRenderer.parseGenerationRecord($0.contents)?.generation }
        }
    }

    /// One recorded write or removal.
    public enum Event: Sendable, Hashable, CustomStringConvertible {
        /// A write of `name` (whether or not it succeeded).
        case write(name: String, succeeded: Bool)
        /// A removal of `path` (whether or not it succeeded).
        case remove(path: String, succeeded: Bool)
        /// A flush to disk of `path` (whether or not it succeeded).
        case flush(path: String, succeeded: Bool)

        public var description: String {
            switch self {
            case .write(let name, let ok): "write \(name)" + (ok ? "" : " !failed")
            case .remove(let path, let ok): "remove \(path)" + (ok ? "" : " !failed")
            case .flush(let path, let ok): "flush \(path)" + (ok ? "" : " !failed")
            }
        }
    }

    private enum Operation: Sendable {
        case write, remove, flush
    }

    private struct Failure: Sendable {
        var operation: Operation
        var transient: Bool
        var remaining: Int?
    }

    private struct State: Sendable {
        var images: [String: Image] = [:]
        var events: [Event] = []
        var failures: [Failure] = []
        var now: Date = Date(timeIntervalSince1970: 1_764_000_000)
        var onRemove: (@Sendable (String) -> Void)?
        var onFlush: (@Sendable (String) -> Void)?
    }

    /// The directory, without a trailing slash.
    public let directory: String
    private let state = Mutex(State())

    /// Creates an empty store.
    /// - Parameter directory: The image directory (nothing is created on disk).
    public init(directory: String = "/var/lib/recontextd/images") {
        self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    }

    // MARK: - Setting up

    /// Puts a file in the store without recording a write (an image of an earlier run, or a
    /// stranger); returns its path.
    @discardableResult
    public func seed(name: String, modified: Date? = nil) -> String {
        let path = directory + "/" + name
        state.withLock { state in
            state.images[path] = Image(path: path, context: nil, record: nil, modified: modified ?? state.now)
        }
        return path
    }

    /// Makes the next `times` writes (`nil`: all) fail; transient like a full disk, or permanent.
    public func failWrites(times: Int? = 1, transient: Bool = true) {
        state.withLock { $0.failures.append(Failure(operation: .write, transient: transient, remaining: times)) }
    }

    /// Makes the next `times` removals (`nil`: all) fail.
    public func failRemovals(times: Int? = 1, transient: Bool = false) {
        state.withLock { $0.failures.append(Failure(operation: .remove, transient: transient, remaining: times)) }
    }

    /// Makes the next `times` flushes to disk (`nil`: all) fail, like an I/O error.
    public func failFlushes(times: Int? = 1, transient: Bool = true) {
        state.withLock { $0.failures.append(Failure(operation: .flush, transient: transient, remaining: times)) }
    }

    /// Sets the modification time given to later writes.
    public func setNow(_ date: Date) {
        state.withLock { $0.now = date }
    }

    /// Calls `hook` with the path of each removal, before the file goes.
    public func onRemove(_ hook: @escaping @Sendable (String) -> Void) {
        state.withLock { $0.onRemove = hook }
    }

    /// Calls `hook` with the path of each flush to disk, before it happens.
    public func onFlush(_ hook: @escaping @Sendable (String) -> Void) {
        state.withLock { $0.onFlush = hook }
    }

    // MARK: - Inspecting

    /// Every write and removal, in order.
    public var events: [Event] { state.withLock { $0.events } }

    /// The names written successfully, in order.
    public var writtenNames: [String] {
        events.compactMap { if case .write(let name, true) = $0 { name } else { nil } }
    }

    /// The paths removed successfully, in order.
    public var removedPaths: [String] {
        events.compactMap { if case .remove(let path, true) = $0 { path } else { nil } }
    }

    /// Every removal asked for, successful or not, in order.
    public var removalRequests: [String] {
        events.compactMap { if case .remove(let path, _) = $0 { path } else { nil } }
    }

    /// The images in the store now, by path.
    public var images: [String: Image] { state.withLock { $0.images } }

    /// The image at `path`, if any.
    public func image(at path: String) -> Image? { state.withLock { $0.images[path] } }

    // MARK: - ImageStore

    public func write(_ context: RenderedContext, record: RenderedFile, name: String) async throws(ImageStoreError)
        -> String
    {
        let path = directory + "/" + name
        try state.withLock { state throws(ImageStoreError) in
            if let error = Self.consumeFailure(.write, path: path, in: &state) {
                state.events.append(.write(name: name, succeeded: false))
                throw error
            }
            guard !name.isEmpty, !name.contains("/") else {
                state.events.append(.write(name: name, succeeded: false))
                throw ImageStoreError("invalid image name \(name)", isTransient: false)
            }
            state.images[path] = Image(path: path, context: context, record: record, modified: state.now)
            state.events.append(.write(name: name, succeeded: true))
        }
        return path
    }

    public func remove(path: String) async throws(ImageStoreError) {
        let hook = state.withLock { $0.onRemove }
        hook?(path)
        try state.withLock { state throws(ImageStoreError) in
            if let error = Self.consumeFailure(.remove, path: path, in: &state) {
                state.events.append(.remove(path: path, succeeded: false))
                throw error
            }
            guard relativeName(path) != nil else {
                state.events.append(.remove(path: path, succeeded: false))
                throw ImageStoreError("refusing to remove \(path): not directly in \(directory)", isTransient: false)
            }
            state.images.removeValue(forKey: path)
            state.events.append(.remove(path: path, succeeded: true))
        }
    }

    public func makeDurable(path: String) async throws(ImageStoreError) {
        let hook = state.withLock { $0.onFlush }
        hook?(path)
        try state.withLock { state throws(ImageStoreError) in
            if let error = Self.consumeFailure(.flush, path: path, in: &state) {
                state.events.append(.flush(path: path, succeeded: false))
                throw error
            }
            guard state.images[path] != nil else {
                state.events.append(.flush(path: path, succeeded: false))
                throw ImageStoreError("cannot flush \(path) to disk: No such file or directory", isTransient: false)
            }
            state.events.append(.flush(path: path, succeeded: true))
        }
    }

    /// The paths flushed to disk successfully, in order.
    public var flushedPaths: [String] {
        events.compactMap { if case .flush(let path, true) = $0 { path } else { nil } }
    }

    public func exists(path: String) async -> Bool {
        state.withLock { $0.images[path] != nil }
    }

    public func storedImages() async throws(ImageStoreError) -> [StoredImage] {
        state.withLock { state in
            state.images.values.compactMap { image -> StoredImage? in
                guard let name = relativeName(image.path), ImageNaming.parse(name) != nil else { return nil }
                return StoredImage(name: name, path: image.path, modified: image.modified)
            }
            .sorted { $0.name < $1.name }
        }
    }

    // MARK: - Internals

    private func relativeName(_ path: String) -> String? {
        let prefix = directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let name = String(path.dropFirst(prefix.count))
        return name.isEmpty || name.contains("/") || name == "." || name == ".." ? nil : name
    }

    private static func consumeFailure(_ operation: Operation, path: String, in state: inout State) -> ImageStoreError?
    {
        guard let index = state.failures.firstIndex(where: { $0.operation == operation }) else { return nil }
        let failure = state.failures[index]
        if let remaining = failure.remaining {
            if remaining <= 1 {
                state.failures.remove(at: index)
            } else {
                state.failures[index].remaining = remaining - 1
            }
        }
        let verb =
            switch operation {
            case .write: "build"
            case .remove: "remove"
            case .flush: "flush"
            }
        let cause =
            operation == .flush
            ? "Input/output error" : failure.transient ? "No space left on device" : "Image too large"
        return ImageStoreError("cannot \(verb) \(path): \(cause)", isTransient: failure.transient)
    }
}
