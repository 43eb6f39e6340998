import Testing
import Virt

/// How libvirt's errors are classified for retries: the messages are the ones seen on this
/// machine's libvirt 9.0 and QEMU 7.2.
@Suite("VirtError: which failures are worth a retry")
struct VirtErrorTests {
    static func error(_ code: VirtError.Code, _ message: String) -> VirtError {
        VirtError(code: code, message: message, operation: "virDomainUpdateDeviceFlags")
    }

    @Test(
        "tray, job and lock failures are transient",
        arguments: [
            (
                VirtError.Code.internalError,
                "internal error: unable to execute QEMU command 'blockdev-remove-medium': Tray of device 'scsi0-0-0-0' is not open"
            ),
            (
                .internalError,
                "internal error: unable to execute QEMU command 'blockdev-insert-medium': Tray of the device is not open"
            ),
            (.operationFailed, "operation failed: timed out waiting to open tray of 'sda'"),
            (
                .operationTimeout,
                "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainMigrateBegin3Params)"
            ),
            (.operationFailed, "operation failed: domain is in a job"),
        ])
    func transient(code: VirtError.Code, message: String) {
        let error = Self.error(code, message)
        #expect(error.isTransient)
        // The pipeline replaces a SCSI drive whose tray keeps refusing (HypervisorError.refusedByTray).
        #expect(error.mentionsTray == message.lowercased().contains("tray"))
    }

    @Test(
        "other internal and operation failures are not",
        arguments: [
            (
                VirtError.Code.internalError,
                "internal error: unable to execute QEMU command 'blockdev-add': Could not open '/x'"
            ),
            (.operationFailed, "operation failed: disk device type 'cdrom' cannot be detached"),
            (.noDomain, "Domain not found: no domain with matching uuid"),
        ])
    func permanent(code: VirtError.Code, message: String) {
        #expect(!Self.error(code, message).isTransient)
        #expect(!Self.error(code, message).mentionsTray)
    }
}
