import Foundation

// MARK: - Starting and stopping

extension LibvirtTestHost {
    /// Starts a host and returns when its libvirtd answers (about 0.2 s with a warm capabilities
    /// cache, 1.5 s without; two at once on 2 cores: about 2.5 s).
    ///
    /// - Parameter configuration: hostname, address, directories; see ``Configuration``.
    /// - Throws: ``LibvirtTestHostError/unavailable(_:)`` where ``skipReason`` is set,
    ///   ``LibvirtTestHostError/startFailed(_:logTail:)`` when the daemons do not come up.
    public static func start(
        _ configuration: Configuration = Configuration()
    ) async throws -> LibvirtTestHost {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try startBlocking(configuration) })
            }
        }
    }

    /// Blocking form of ``start(_:)``.
    public static func startBlocking(
        _ configuration: Configuration = Configuration()
    ) throws -> LibvirtTestHost {
        if let reason = skipReason {
            throw LibvirtTestHostError.unavailable(reason)
        }
        let fileManager = FileManager.default
        let stateDirectory: URL
        let removeOnStop: Bool
        if let given = configuration.stateDirectory {
            stateDirectory = given
            removeOnStop = false
        } else {
            let token = UUID().uuidString.prefix(8).lowercased()
            stateDirectory = URL(fileURLWithPath: NSTemporaryDirectory())
                .appendingPathComponent("lvhost-\(token)")
            removeOnStop = true
        }
        try fileManager.createDirectory(at: stateDirectory, withIntermediateDirectories: true)

        var arguments = [
            harnessScriptPath(),
            "--state-dir", stateDirectory.path,
            "--hostname", configuration.hostname,
            "--address", configuration.address,
            "--migration-ports",
            "\(configuration.migrationPorts.lowerBound)-\(configuration.migrationPorts.upperBound)",
            "--log-level", String(configuration.logLevel),
            "--timeout", String(configuration.startupTimeout),
        ]
        for directory in configuration.sharedDirectories { arguments += ["--shared-dir", directory] }
        for directory in configuration.privateDirectories { arguments += ["--private-dir", directory] }
        for (name, address) in configuration.extraHosts.sorted(by: { $0.key < $1.key }) {
            arguments += ["--hosts-entry", "\(address)=\(name)"]
        }
        if let cache = configuration.qemuCapabilitiesCache { arguments += ["--qemu-caps-cache", cache] }
        if !configuration.usePIDNamespace { arguments.append("--no-pid-namespace") }
        // A directory we made goes with the harness, even if this process dies without stop().
        if removeOnStop { arguments.append("--remove-state-dir-on-exit") }

        CoreDumps.enable()
        let startedAt = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        let stdinPipe = Pipe()
        let stdoutPipe = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = FileHandle.standardError
        try process.run()

        let reader = LineReader(stdoutPipe.fileHandleForReading)
        let failure: LibvirtTestHostError
        if let line = reader.readLine() {
            do {
                let ready = try JSONDecoder.snakeCase.decode(ReadyLine.self, from: Data(line.utf8))
                if ready.ready, ready.uri != nil {
                    return LibvirtTestHost(
                        ready: ready, process: process, stdinWriter: stdinPipe.fileHandleForWriting,
                        stdoutReader: reader, stateDirectory: stateDirectory,
                        removeStateDirectoryOnStop: removeOnStop, startedAt: startedAt)
                }
                let kept = removeOnStop ? "" : " (state directory: \(stateDirectory.path))"
                failure = .startFailed("\(ready.error ?? "not ready")\(kept)", logTail: ready.logTail ?? "")
            } catch {
                failure = .protocolError("unreadable ready line \(line.debugDescription): \(error)")
            }
        } else {
            failure = .startFailed("the harness exited without a ready line", logTail: "")
        }
        try? stdinPipe.fileHandleForWriting.close()
        process.waitUntilExit()
        if removeOnStop { // the harness removes it too, but not when its arguments were refused
            try? fileManager.removeItem(at: stateDirectory)
        }
        throw failure
    }

    /// Stops the host: closes the supervisor's stdin and waits for it to stop every process.
    ///
    /// Idempotent. Removes the state directory if this object created it.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.stopBlocking()
                continuation.resume()
            }
        }
    }

    /// Blocking form of ``stop()``.
    ///
    /// - Parameter timeout: seconds to wait for a clean exit before SIGTERM, then SIGKILL, to the
    ///   supervisor (a killed supervisor still takes its PID namespace down with it).
    public func stopBlocking(timeout: TimeInterval = 30) {
        lock.lock()
        defer { lock.unlock() }
        guard let process = state.process else { return }
        try? state.stdinWriter?.close()
        state.stdinWriter = nil
        if !process.waitForExit(timeout: .seconds(timeout)) {
            process.terminate()
            if !process.waitForExit(timeout: .seconds(5)) {
                kill(process.processIdentifier, SIGKILL)
                _ = process.waitForExit(timeout: .seconds(5))
            }
        }
        state.stdoutReader?.close()
        state.stdoutReader = nil
        state.process = nil
        if removeStateDirectoryOnStop {
            try? FileManager.default.removeItem(at: stateDirectory) // normally gone already
        }
    }
}
