#!/bin/sh
# Prints the libvirt domain XML of the Debian 12 test guest (build-debian-guest.sh).
#
# Usage: debian-domain.xml.sh NAME IMAGEDIR DISK SERIAL_LOG [SOURCE]
#
#   NAME        domain name
#   IMAGEDIR    where build-debian-guest.sh put vmlinuz and initrd.img (absolute; the same path on
#               every host the guest migrates to)
#   DISK        the guest's root disk: a qcow2 overlay on IMAGEDIR/disk.raw (absolute; on the shared
#               directory), attached as vda with cache='none' (so migrating it needs --unsafe)
#   SERIAL_LOG  the file libvirt writes the serial console to (absolute; appended to)
#   SOURCE      the ISO in the CD-ROM sda; omitted or empty: an empty drive
#
# Environment (optional):
#   DEBIAN_GUEST_MEMORY_MIB  memory, default 512
#   DEBIAN_GUEST_CHANNEL     1: add recontextd's virtio-serial channel (org.recontextd.channel.0)
#   DEBIAN_GUEST_UUID        a fixed domain UUID
#   DEBIAN_GUEST_CDROM_BUS   sata (default) or scsi (on a virtio-scsi controller)
#
# A virtio-serial controller is always there, so that <context channel="add"> can hot-plug the
# channel's port into the running guest.
# TCG (<domain type='qemu'>), q35, one vCPU, no network. on_reboot/on_crash destroy: a guest that
# fails stops instead of booting again (and cloud-init's first boot stays the only one).
set -eu

if [ $# -lt 4 ] || [ $# -gt 5 ]; then
    echo "usage: $0 NAME IMAGEDIR DISK SERIAL_LOG [SOURCE]" >&2
    exit 2
fi
NAME=$1 IMAGEDIR=$2 DISK=$3 SERIAL_LOG=$4 SOURCE=${5:-}
MEMORY=${DEBIAN_GUEST_MEMORY_MIB:-512}

# The values go into the XML as they are: refuse the characters that would need escaping.
for value in "$NAME" "$IMAGEDIR" "$DISK" "$SERIAL_LOG" "$SOURCE" "${DEBIAN_GUEST_UUID:-}"; do
    case $value in
        *[\&\<\>\'\"]*)
            echo "$0: '$value' has a character that XML would need escaped (& < > ' \")" >&2
            exit 2
            ;;
    esac
done

UUID_LINE=""
[ -n "${DEBIAN_GUEST_UUID:-}" ] && UUID_LINE="  <uuid>$DEBIAN_GUEST_UUID</uuid>
"
SOURCE_LINE=""
[ -n "$SOURCE" ] && SOURCE_LINE="      <source file='$SOURCE'/>
"
CHANNEL=""
[ "${DEBIAN_GUEST_CHANNEL:-0}" = 1 ] && CHANNEL="    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.recontextd.channel.0'/>
    </channel>
"

BUS=${DEBIAN_GUEST_CDROM_BUS:-sata}
SCSI_CONTROLLER=""
case $BUS in
    sata) ;;
    scsi) SCSI_CONTROLLER="    <controller type='scsi' index='0' model='virtio-scsi'/>
" ;;
    *)
        echo "$0: DEBIAN_GUEST_CDROM_BUS is '$BUS': sata or scsi" >&2
        exit 2
        ;;
esac

cat <<XML
<domain type='qemu'>
  <name>$NAME</name>
${UUID_LINE}  <memory unit='MiB'>$MEMORY</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$IMAGEDIR/vmlinuz</kernel>
    <initrd>$IMAGEDIR/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda rw quiet panic=-1</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='$DISK'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
${SOURCE_LINE}      <target dev='sda' bus='$BUS'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='$SERIAL_LOG' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$SERIAL_LOG' append='on'/>
      <target type='serial' port='0'/>
    </console>
${CHANNEL}${SCSI_CONTROLLER}    <controller type='virtio-serial' index='0'/>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
