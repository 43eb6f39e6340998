// libvirt, imported into Swift.
#ifndef RECONTEXTD_CLIBVIRT_SHIM_H
#define RECONTEXTD_CLIBVIRT_SHIM_H

#include <libvirt/libvirt.h>
// Error reporting lives in its own header; the wrapper reads the thread-local last error with it.
#include <libvirt/virterror.h>
// QEMU's monitor through libvirt (libvirt-qemu.so, in libvirt0 like libvirt.so): used for one
// command only, blockdev-open-tray, where libvirt's own record of a tray is stale (Domain+QEMU.swift).
#include <libvirt/libvirt-qemu.h>

// VIR_DOMAIN_EVENT_CALLBACK() is a function-like macro, which Swift does not import: the wrapper
// casts each typed callback to virConnectDomainEventGenericCallback with unsafeBitCast instead.

#endif
