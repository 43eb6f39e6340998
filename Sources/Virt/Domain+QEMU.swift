internal import CLibvirt

extension Domain {
    /// Sends one QMP command to the domain's QEMU through libvirt's monitor passthrough and
    /// returns QEMU's reply (JSON), which may be an error reply: only libvirt's own failures throw.
    ///
    /// The corresponding C function is `virDomainQemuMonitorCommand` (libvirt-qemu). libvirt does
    /// not track what such a command changes, and marks the domain tainted (`custom-monitor`, in
    /// the domain's log): use it only where libvirt's API has no way.
    /// - Parameter json: a QMP command, e.g. `{"execute":"query-block"}`.
    public func qemuMonitorCommand(_ json: String) throws(VirtError) -> String {
        try connection.gate.run { () throws(VirtError) in
            try LibvirtCall.string("virDomainQemuMonitorCommand(\(name))") {
                var reply: UnsafeMutablePointer<CChar>?
                return virDomainQemuMonitorCommand(handle, json, &reply, 0) < 0 ? nil : reply
            }
        }
    }

    /// Opens the tray of a removable drive in QEMU (`blockdev-open-tray`, forced, so a tray the
    /// guest locked opens too). QEMU reports the move (`DEVICE_TRAY_MOVED`), as for libvirt's own
    /// media changes, so libvirt's record of the tray stays right.
    ///
    /// For the one state libvirt's API cannot leave: libvirt recorded the tray open while QEMU
    /// has it shut (a reset of the drive by the guest shuts the tray and tells nobody), so every
    /// media change skips opening it and QEMU refuses to remove the medium.
    /// - Parameter deviceID: the drive's device id in QEMU: libvirt's alias of the disk, e.g. `ide0-1-0`.
    public func openTrayInQEMU(deviceID: String) throws(VirtError) {
        guard !deviceID.isEmpty,
            deviceID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        else {
            throw VirtError(
                code: .invalidArgument, message: "not a QEMU device id: '\(deviceID)'",
                operation: "blockdev-open-tray (\(name))")
        }
        let reply = try qemuMonitorCommand(
            #"{"execute":"blockdev-open-tray","arguments":{"id":"\#(deviceID)","force":true}}"#)
        // libvirt passes QEMU's reply on as it is, an error reply included.
        guard reply.contains(#""return""#) else {
            throw VirtError(
                code: .operationFailed, message: "QEMU refused blockdev-open-tray of \(deviceID): \(reply.prefix(500))",
                operation: "blockdev-open-tray (\(name))")
        }
    }
}
