import Foundation

// MARK: - Talking to the host

extension LibvirtTestHost {
    /// Runs `/usr/bin/virsh -c <uri> <arguments>` and returns its standard output.
    ///
    /// - Throws: ``LibvirtTestHostError/commandFailed(command:status:standardError:)`` with virsh's
    ///   standard error when it exits non-zero.
    public func virsh(_ arguments: [String]) throws -> String {
        try Self.run("/usr/bin/virsh", ["-c", uri] + arguments)
    }

    /// Defines a persistent domain from `xml` (`virsh define`), through a file in the state
    /// directory.
    public func defineDomain(_ xml: String) throws {
        let file = stateDirectory.appendingPathComponent("define-\(UUID().uuidString).xml")
        try Data(xml.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        _ = try virsh(["define", file.path])
    }

    /// Arguments that run `command` "on" this host: in its mount, UTS (and PID) namespaces, where
    /// plain `qemu:///system`, `/etc/libvirt`, `/run/libvirt` … are this host's.
    ///
    /// Start the result with `Process` (executable `/usr/bin/nsenter`, these arguments minus the
    /// first) or pass it to ``runOnHost(_:)``.
    ///
    /// - Important: A `Process` started from a libdispatch thread (any async test) inherits that
    ///   thread's signal mask, which blocks SIGTERM, SIGCHLD and most others. A long-running
    ///   program started this way that must react to SIGTERM or reap children has to unblock them
    ///   itself (the harness does).
    public func onHostArguments(_ command: [String]) -> [String] {
        var arguments = ["/usr/bin/nsenter", "--target", String(libvirtdPID), "--mount", "--uts"]
        if usesPIDNamespace { arguments.append("--pid") }
        return arguments + ["--"] + command
    }

    /// Runs `command` on this host (see ``onHostArguments(_:)``) and returns its standard output.
    public func runOnHost(_ command: [String]) throws -> String {
        let arguments = onHostArguments(command)
        return try Self.run(arguments[0], Array(arguments.dropFirst()))
    }

    /// Sends SIGHUP to libvirtd (it re-reads `/etc/libvirt/hooks/`, i.e. `STATE/etc/hooks/`).
    public func reloadLibvirtd() throws {
        _ = try command("reload")
    }

    /// Stops libvirtd and starts it again (running VMs stay up and are reconnected).
    ///
    /// Clients see their connection drop; for reconnect tests.
    public func restartLibvirtd() throws {
        let reply = try command("restart-libvirtd")
        if let pid = reply.libvirtdPid {
            lock.withLock {
                state.libvirtdPID = pid
                state.libvirtdPIDs.append(pid)
            }
        }
    }

    private func command(_ line: String) throws -> Reply {
        lock.lock()
        defer { lock.unlock() }
        guard let writer = state.stdinWriter, let reader = state.stdoutReader else {
            throw LibvirtTestHostError.stopped
        }
        try writer.write(contentsOf: Data((line + "\n").utf8))
        guard let response = reader.readLine() else {
            throw LibvirtTestHostError.protocolError("the harness exited during \(line.debugDescription)")
        }
        let reply = try JSONDecoder.snakeCase.decode(Reply.self, from: Data(response.utf8))
        guard reply.ok else {
            throw LibvirtTestHostError.commandFailed(
                command: [line], status: 1,
                standardError: [reply.error, reply.logTail].compactMap { $0 }.joined(separator: "\n"))
        }
        return reply
    }

    /// Runs a program to completion; its output goes through temporary files, so neither stream
    /// can fill a pipe and stall it.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let fileManager = FileManager.default
        let base = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("lvhost-run-\(UUID().uuidString)")
        let outURL = base.appendingPathExtension("out")
        let errURL = base.appendingPathExtension("err")
        _ = fileManager.createFile(atPath: outURL.path, contents: nil)
        _ = fileManager.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? fileManager.removeItem(at: outURL)
            try? fileManager.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        do {
            try process.run()
        } catch {
            try? outHandle.close()
            try? errHandle.close()
            throw error
        }
        process.waitUntilExit()
        try? outHandle.close()
        try? errHandle.close()
        let output = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let errors = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
            throw LibvirtTestHostError.commandFailed(
                command: [executable] + arguments, status: process.terminationStatus, standardError: errors)
        }
        return output
    }
}
