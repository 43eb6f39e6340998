import Logging

// MARK: - Running work

extension DomainCoordinator {
    /// Runs the coordinator's work until ``shutdown(budget:)`` completes: every run and retry
    /// timer is a child task of this call.
    public func run() async {
        let runner = self.runner
        let sleeper = self.sleeper
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for await command in commands {
                    switch command {
                    case .start(let work):
                        group.addTask {
                            let report = await runner(work)
                            try await self.finished(work, report)
                        }
                    case .retry(let uuid, let delay, let token):
                        group.addTask {
                            do { try await sleeper.sleep(for: delay) } catch { return }
                            await self.retryDue(uuid, token: token)
                        }
                    case .budget(let budget):
                        group.addTask {
                            do { try await sleeper.sleep(for: budget) } catch { return }
                            try await self.budgetSpent(budget)
                        }
                    case .stop:
                        throw Ending.stopped
                    }
                }
            }
        } catch {
            // An Ending: the drain completed, the budget was spent, or nothing was running.
        }
        resumeIdleWaiters()
    }

    /// Stops taking work and drains: queued work, follow-ups and pending retries are dropped;
    /// running runs finish their swap, and are cancelled once `budget` is spent (the domains left
    /// are logged and kept in ``leftAtShutdown``). ``run()`` returns when the drain ends.
    public func shutdown(budget: Duration) {
        guard accepting else { return }
        accepting = false
        queue.removeAll()
        for uuid in Array(domains.keys) {
            update(uuid) {
                $0.queued = nil
                $0.followUp = nil
                $0.retryToken = nil
            }
        }
        if runningCount == 0 {
            intake.yield(.stop)
        } else {
            logger.notice(
                "stopping: waiting for running pipelines to finish",
                metadata: ["runs": "\(runningCount)", "budget": "\(budget)"])
            intake.yield(.budget(budget))
        }
        intake.finish()
        resumeIdleWaitersIfIdle()
    }

    // MARK: - Internals

    /// Starts queued work while slots are free.
    func pump() {
        while runningCount < settings.concurrency, let uuid = queue.popFirst() {
            guard var record = domains[uuid], let work = record.queued else { continue }
            record.queued = nil
            record.running = true
            domains[uuid] = record
            runningCount += 1
            intake.yield(.start(work))
        }
        resumeIdleWaitersIfIdle()
    }

    /// A run ended: schedule a retry or forget failures, note whether the domain is managed,
    /// tell the owner, start the follow-up.
    /// - Throws: ``Ending/drained`` when it was the last run of a drain (ends ``run()``).
    func finished(_ work: Work, _ report: RunReport) throws(Ending) {
        var record = domains[work.uuid] ?? DomainRecord()
        record.running = false
        runningCount -= 1
        var retryAfter: Duration?
        if report.isRetryable {
            record.failures += 1
            if accepting, record.retryToken == nil {
                let delay = Self.delay(
                    afterFailures: record.failures, initial: settings.retryInitial, maximum: settings.retryMaximum)
                nextRetryToken += 1
                record.retryToken = nextRetryToken
                intake.yield(.retry(uuid: work.uuid, after: delay, token: nextRetryToken))
                retryAfter = delay
                logger.warning(
                    "run failed with a transient error; retrying later",
                    metadata: ["domain.uuid": "\(work.uuid)", "retry.after": "\(delay)"])
            }
        } else {
            record.failures = 0
            record.retryToken = nil
        }
        switch report.outcome {
        case .applied(let state), .unchanged(let state):
            var state = state
            state.guest = GuestApplied.newer(record.applied?.guest, state.guest)
            record.applied = state
        case .skipped: record.applied = nil
        case .failed: break
        }
        let managed: Bool
        if case .skipped = report.outcome { managed = false } else { managed = true }
        if managed != record.managed {
            record.managed = managed
            managedCount += managed ? 1 : -1
        }
        if let followUp = record.followUp {
            record.followUp = nil
            if accepting {
                record.queued = followUp
                queue.append(work.uuid)
            }
        }
        domains[work.uuid] = record.isEmpty ? nil : record
        onFinished(Finished(report: report, work: work, retryAfter: retryAfter, managedDomains: managedCount))
        pump()
        if !accepting, runningCount == 0 { throw .drained }
    }

    /// A retry timer fired; it runs the domain unless the retry was cleared since.
    func retryDue(_ uuid: String, token: UInt64) {
        guard domains[uuid]?.retryToken == token else { return }
        update(uuid) { $0.retryToken = nil }
        submit(uuid, trigger: .retry)
    }

    /// The shutdown budget is spent: cancel what still runs (the runs stop at their next phase).
    func budgetSpent(_ budget: Duration) throws(Ending) {
        guard runningCount > 0 else { return }
        leftAtShutdown = domains.filter { $0.value.running }.keys.sorted()
        logger.error(
            "shutdown budget spent; cancelling the runs still in progress",
            metadata: ["budget": "\(budget)", "domains": "\(leftAtShutdown.joined(separator: ","))"])
        throw .budgetSpent
    }

    /// Changes the record of `uuid`, dropping it when nothing is left in it.
    func update(_ uuid: String, _ body: (inout DomainRecord) -> Void) {
        var record = domains[uuid] ?? DomainRecord()
        body(&record)
        domains[uuid] = record.isEmpty ? nil : record
    }

    func resumeIdleWaitersIfIdle() {
        if isIdle { resumeIdleWaiters() }
    }

    func resumeIdleWaiters() {
        let waiters = idleWaiters
        idleWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    /// initial × 2^(failures-1), capped at `maximum`.
    static func delay(afterFailures count: Int, initial: Duration, maximum: Duration) -> Duration {
        var delay = initial
        for _ in 1..<max(count, 1) {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}
