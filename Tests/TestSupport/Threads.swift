import Foundation

/// Runs each body on a thread of its own, all at once, and returns when every one has finished.
///
/// For races that must really overlap (two writers of one file, a reader beside them): dispatch
/// queues and the cooperative pool may run such bodies one after the other on a small machine.
/// - Parameter bodies: The work of each thread.
public func runOnThreads(_ bodies: [@Sendable () -> Void]) {
    let group = DispatchGroup()
    for body in bodies {
        group.enter()
        let thread = Thread {
            body()
            group.leave()
        }
        thread.start()
    }
    group.wait()
}
