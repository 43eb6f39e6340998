import FoundationEssentials
import Logging

// MARK: - skip if current

extension PipelineRun {
    /// Ends the run as unchanged when the attached image is ours and already holds the desired
    /// content. If the applied record or the persistent definition does not say so (a previous run
    /// stopped after its live change), it is made to say so now, instead of building the same
    /// content again under a new generation.
    func skipIfCurrent(_ snapshot: DomainSnapshot, _ desired: ContextPipeline.Desired) async throws(RunEnd) {
        guard case .keep(let generation, let path) = pipeline.plan(for: snapshot, desired),
            await images.exists(path: path)
        else { return }
        if pipeline.isInSync(snapshot, desired), let applied = desired.applied,
            await persistentDefinitionNames(path, drive: desired.drive, snapshot: snapshot)
        {
            throw .unchanged(applied)
        }
        let recorded = AppliedState(
            generation: generation, contentHash: desired.context.contentHash, host: settings.host.name, time: Date(),
            imagePath: path, format: desired.context.format, guest: desired.applied?.guest)
        let scope: ChangeScope = snapshot.isPersistent ? [.live, .config] : [.live]
        // The persistent definition must name the attached image too, or the next start would use
        // an older one; flushed to disk first, as the run that inserted it may have stopped before.
        if scope.contains(.config), await makeDurable(path) {
            do {
                try await step(.persist, "change media (config)") { () async throws(HypervisorError) in
                    try await session.changeMedia(drive: desired.drive, to: path, scope: .config)
                }
            } catch {
                warnings.append("the persistent definition could not be updated to the attached image: \(error)")
            }
        }
        do {
            try await step(.record, "record applied state") { () async throws(HypervisorError) in
                try await session.setAppliedMetadata(AppliedMetadata.serialize(recorded), scope: scope)
            }
        } catch {
            warnings.append("the attached image is current but its applied state could not be recorded: \(error)")
        }
        throw .unchanged(recorded)
    }

    /// Whether the persistent definition of a persistent domain names `source` in `drive` (always
    /// true for a transient one). An attached image with a matching applied record is not enough: a
    /// run during an incoming migration sees the domain as transient (libvirt makes it persistent
    /// only at the migration's end) and changes only the live definition, so the persistent one
    /// may still name the source host's image. `false` when it cannot be read (the caller then
    /// rewrites it, and warns if that fails too).
    func persistentDefinitionNames(_ source: String, drive: ContextDrive, snapshot: DomainSnapshot) async -> Bool {
        guard snapshot.isPersistent else { return true }
        do {
            let drives = try await step(.resolve, "read the persistent definition") {
                () async throws(HypervisorError) in try await session.persistentDrives()
            }
            return drives.first { $0.target == drive.target }?.source == source
        } catch {
            return false
        }
    }
}

// MARK: - insert, persist, record, remove the old image

extension PipelineRun {
    /// Puts the new image into the live domain: a media change, or (SCSI replace) a detach of the
    /// old drive and an attach of a new one. A SCSI drive whose tray stays shut through every
    /// media change is replaced too. On failure the new file is deleted and, after a failed
    /// attach, the old drive is put back.
    /// - Returns: the drive as it is now (its source the new image).
    func insert(_ newPath: String, into drive: ContextDrive, format: ContextFormat, snapshot: DomainSnapshot)
        async throws(RunEnd) -> ContextDrive
    {
        var mode = settings.deviceMode
        if mode == .scsiReplace && format == .openNebula {
            // OpenNebula's guest tools react to a media change only (udev ACTION=="change" on the
            // CONTEXT disc); a detach + attach gives add/remove events they ignore.
            mode = .mediaChange
        }
        if mode == .scsiReplace && drive.bus != "scsi" {
            warnings.append(
                "device mode scsi-replace needs a SCSI CD-ROM; \(drive.target) is on \(drive.bus): changed the media instead"
            )
            mode = .mediaChange
        }
        do throws(HypervisorError) {
            switch mode {
            case .mediaChange:
                // A direct change: QEMU opens the tray, swaps and closes it (one TRAY_CHANGE
                // open/close pair); a separate eject would only add a round trip. No eject phase.
                do {
                    try await changeMediaLive(drive, to: newPath)
                } catch  where error.refusedByTray && drive.bus == "scsi" {
                    // Seen in CI after a SCSI VM arrived with an emptied drive: every change for
                    // 20 s and more failed on a shut tray, the drive left empty by the first.
                    warnings.append(
                        "the tray of \(drive.target) stayed shut through every media change (\(error.message)): "
                            + "replaced the drive instead (detach and attach; the guest sees a new device)")
                    try await replace(drive, with: newPath)
                }
            case .scsiReplace:
                try await replace(drive, with: newPath)
            }
        } catch {
            await discard(newPath)
            if error.isGone { throw .skipped(.gone) }
            throw .failed(RunError(phase: .insert, error))
        }
        timings.insertedAt = clock.now
        var inserted = drive
        inserted.source = newPath
        return inserted
    }

    /// The live media change, retried on transient errors. A change refused by the tray while
    /// the hypervisor records that tray open (a stale record: see
    /// ``Hypervisor/reopenTray(of:drive:)``) gets the tray opened and is tried again at once,
    /// with a warning; any other refusal is retried with the usual backoff.
    func changeMediaLive(_ drive: ContextDrive, to newPath: String) async throws(HypervisorError) {
        var reopened: (refusal: HypervisorError, action: String)?
        var reopenFailure: HypervisorError?
        defer {
            if let reopened {
                warnings.append(
                    "the tray of \(drive.target) was recorded open but was shut (\(reopened.refusal.message)): "
                        + "\(reopened.action), then changed the media")
            } else if let reopenFailure {
                warnings.append("the tray of \(drive.target) could not be reopened: \(reopenFailure)")
            }
        }
        try await step(.insert, "change media (live)") { () async throws(HypervisorError) in
            do throws(HypervisorError) {
                try await session.changeMedia(drive: drive, to: newPath, scope: .live)
            } catch  where error.refusedByTray {
                let refusal = error
                let action: String?
                do throws(HypervisorError) {
                    action = try await session.reopenTray(drive)
                } catch {
                    reopenFailure = error
                    throw refusal
                }
                guard let action else { throw refusal }
                reopened = (refusal, action)
                try await session.changeMedia(drive: drive, to: newPath, scope: .live)
            }
        }
    }

    /// What became of the persistent definition.
    enum Persisted {
        /// It names the new image (or the domain is transient).
        case done
        /// It keeps the old image (a warning says why): the old image must stay.
        case keptOld
        /// The domain left this host meanwhile.
        case left
    }

    /// Flushes the new image to disk, then makes the persistent definition name it. The image
    /// went in before the flush (QEMU reads it through the page cache either way, and the flush
    /// would only delay the guest); nothing that outlives a power loss names it before.
    func persist(_ newPath: String, drive: ContextDrive, snapshot: DomainSnapshot) async -> Persisted {
        let durable = await makeDurable(newPath)
        guard snapshot.isPersistent else { return .done }
        guard durable else {
            warnings.append("the new image is attached, but the persistent definition keeps the old one")
            return .keptOld
        }
        do {
            try await step(.persist, "change media (config)") { () async throws(HypervisorError) in
                try await session.changeMedia(drive: drive, to: newPath, scope: .config)
            }
            return .done
        } catch  where error.isGone {
            return .left
        } catch {
            warnings.append(
                "the live domain has the new image but its persistent definition could not be updated: \(error)")
            return .keptOld
        }
    }

    /// Records the applied state in the domain's metadata (live, and config when persistent).
    /// - Returns: `false` when the domain left this host meanwhile.
    func record(_ applied: AppliedState, snapshot: DomainSnapshot) async -> Bool {
        let scope: ChangeScope = snapshot.isPersistent ? [.live, .config] : [.live]
        do {
            try await step(.record, "record applied state") { () async throws(HypervisorError) in
                try await session.setAppliedMetadata(AppliedMetadata.serialize(applied), scope: scope)
            }
        } catch  where error.isGone {
            return false
        } catch {
            warnings.append("the new image is attached but the applied state could not be recorded: \(error)")
        }
        return true
    }

    /// Removes the image the new one replaced, when it is one of ours.
    func removeOld(_ oldSource: String?, newPath: String, domain: DomainIdentity) async {
        guard let oldSource, oldSource != newPath,
            let parsed = ImageNaming.parse(path: oldSource, directory: images.directory), parsed.uuid == domain.uuid
        else { return }
        do {
            try await images.remove(path: oldSource)
        } catch {
            warnings.append("the old image \(oldSource) could not be removed: \(error)")
        }
    }

    /// Flushes `path` to disk (timed as part of `persist`); on failure adds a warning and returns
    /// `false`: then nothing that outlives a power loss may name the image.
    func makeDurable(_ path: String) async -> Bool {
        do {
            try await timed(.persist) { () async throws(ImageStoreError) in try await images.makeDurable(path: path) }
            return true
        } catch {
            warnings.append("\(path) could not be flushed to disk: \(error)")
            return false
        }
    }

    /// Detaches the SCSI drive and attaches one like it holding `newPath`; puts the old one back
    /// when the attach fails.
    func replace(_ drive: ContextDrive, with newPath: String) async throws(HypervisorError) {
        try await step(.eject, "detach drive (live)") { () async throws(HypervisorError) in
            try await session.detachDrive(drive, scope: .live)
        }
        do {
            try await step(.insert, "attach drive (live)") { () async throws(HypervisorError) in
                try await session.attachDrive(drive, source: newPath, scope: .live)
            }
        } catch {
            await restoreDrive(drive, source: drive.source)
            throw error
        }
    }

    /// Puts the old drive back after a failed SCSI attach, so the VM keeps a context image.
    func restoreDrive(_ drive: ContextDrive, source: String?) async {
        do {
            try await retrying("re-attach the old drive") { () async throws(HypervisorError) in
                try await session.attachDrive(drive, source: source, scope: .live)
            }
            warnings.append("the new drive could not be attached; the old one was put back")
        } catch {
            logger.error("the old drive could not be put back", metadata: ["error": "\(error)"])
            warnings.append("the old drive could not be put back: \(error)")
        }
    }

    /// Removes an image that was built but never attached.
    func discard(_ path: String) async {
        do {
            try await images.remove(path: path)
        } catch {
            warnings.append("the unused image \(path) could not be removed: \(error)")
        }
    }
}

// MARK: - Logging

extension PipelineRun {
    /// One line per run: a notice when applied, info when unchanged or skipped, an error when
    /// failed; warnings first, one line each.
    func log(_ report: RunReport) {
        var metadata: Logger.Metadata = [
            "result": "\(report.result)",
            "duration.total_ms": "\(Self.ms(report.timings.total))",
        ]
        for phase in Phase.allCases {
            if let duration = report.timings.phases[phase] { metadata["duration.\(phase)_ms"] = "\(Self.ms(duration))" }
        }
        for (index, warning) in report.warnings.enumerated() {
            logger.warning("\(warning)", metadata: ["warning.index": "\(index)"])
        }
        switch report.outcome {
        case .applied(let applied):
            metadata["generation"] = "\(applied.generation)"
            metadata["content_hash"] = "\(applied.contentHash.prefix(12))"
            metadata["image"] = "\(applied.imagePath)"
            logger.notice("context applied", metadata: metadata)
        case .unchanged(let applied):
            metadata["generation"] = "\(applied.generation)"
            logger.info("context unchanged", metadata: metadata)
        case .skipped(let reason):
            metadata["reason"] = "\(reason.rawValue)"
            logger.info("run skipped", metadata: metadata)
        case .failed(let phase, let message, let transient):
            metadata["phase"] = "\(phase)"
            metadata["transient"] = "\(transient)"
            metadata["error"] = "\(message)"
            if let code = failure?.hypervisorCode { metadata["hypervisor.error_code"] = "\(code)" }
            logger.error("run failed", metadata: metadata)
        }
    }

    static func ms(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return DecimalText.fixed(ms, decimals: 2)
    }
}
