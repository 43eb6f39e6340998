internal import CLibisofs

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - LibisofsWriteOptions

/// The `IsoWriteOpts` every image is written with; freed in `deinit`.
///
/// - ISO level 3, Rock Ridge (RRIP 1.10, like genisoimage) and Joliet; deep directories are not
///   relocated.
/// - Relaxed volume attributes, so the volume id keeps its case (`cidata`, not `CIDATA`).
/// - Joliet names without the `;1` version suffix and without a forced trailing dot; Joliet in
///   UTF-16 so characters outside the BMP are not replaced by `_`. The ECMA-119 names stay
///   standard (upper case, `;1`): Rock Ridge and Joliet readers never see them.
/// - Reproducible: no ACL/xattr (AAIP), no MD5 tags, no hard-link detection, all timestamps
///   in GMT, volume descriptor times and directory record times from the given time.
///
/// Use only inside ``Libisofs/withLibrary(_:)``.
final class LibisofsWriteOptions {
    /// The `IsoWriteOpts *`.
    let handle: OpaquePointer

    /// Creates the options for an image recorded at `time` (seconds since the epoch).
    init(time: Int) throws(ISOBuilderError) {
        var options: OpaquePointer?
        try Libisofs.check(iso_write_opts_new(&options, 0), "create write options")
        guard let options else {
            throw ISOBuilderError(code: .libisofs, message: "libisofs returned no write options")
        }
        handle = options

        try set(iso_write_opts_set_iso_level(options, 3), "ISO level 3")
        try set(iso_write_opts_set_rockridge(options, 1), "Rock Ridge")
        // RRIP 1.10, as genisoimage writes it: its PX entries carry no inode numbers. With RRIP 1.12
        // libisofs derives them from process-global state, and two builds of the same input in one
        // process came out different.
        try set(iso_write_opts_set_rrip_version_1_10(options, 1), "Rock Ridge 1.10")
        // Directories deeper than 8 levels stay where they are instead of being relocated (RE/CL/PL
        // entries, which some readers, e.g. pycdlib, do not follow). Linux reads deep trees fine.
        try set(iso_write_opts_set_allow_deep_paths(options, 1), "deep paths")
        try set(iso_write_opts_set_joliet(options, 1), "Joliet")
        try set(iso_write_opts_set_joliet_utf16(options, 1), "Joliet UTF-16")
        try set(iso_write_opts_set_relaxed_vol_atts(options, 1), "relaxed volume attributes")
        // bit1: omit ";1" and the forced dot for Joliet alone.
        try set(iso_write_opts_set_omit_version_numbers(options, 2), "Joliet names without version numbers")
        try set(iso_write_opts_set_no_force_dots(options, 2), "Joliet names without forced dots")
        try set(iso_write_opts_set_aaip(options, 0), "no AAIP")
        try set(iso_write_opts_set_hardlinks(options, 0), "no hard-link detection")
        try set(iso_write_opts_set_record_md5(options, 0, 0), "no MD5 tags")
        try set(iso_write_opts_set_always_gmt(options, 1), "GMT timestamps")
        // bit0 | bit1: ECMA-119 and Joliet directory records carry the node mtime (our fixed time).
        try set(iso_write_opts_set_dir_rec_mtime(options, 3), "directory record mtime")

        // The volume "UUID" fixes creation and modification time as a GMT digit string
        // (YYYYMMDDhhmmsscc), free of time zone effects.
        var seconds = time_t(time)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else {
            throw ISOBuilderError(
                code: .invalidModificationTime, message: "cannot convert time \(time) to a calendar date")
        }
        let digits = [
            (Int(parts.tm_year) + 1900, 4), (Int(parts.tm_mon) + 1, 2), (Int(parts.tm_mday), 2),
            (Int(parts.tm_hour), 2), (Int(parts.tm_min), 2), (Int(parts.tm_sec), 2), (0, 2),
        ].map { value, width in
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }.joined()
        var uuid = Array(digits.utf8CString)
        try set(
            iso_write_opts_set_pvd_times(options, seconds, seconds, 0, 0, &uuid),
            "volume descriptor times"
        )
    }

    deinit {
        iso_write_opts_free(handle)
    }

    /// Checks the result of one setter.
    private func set(_ status: Int32, _ what: String) throws(ISOBuilderError) {
        try Libisofs.check(status, "set write option (\(what))")
    }
}
