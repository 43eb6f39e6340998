#!/bin/sh
# Prints the libvirt domain XML of the recontextd test guest.
#
# Usage: guest-domain.xml.sh NAME BUS TARGET OUTDIR SERIAL_LOG [SOURCE]
#
#   NAME        domain name
#   BUS         sata (machine q35), ide (machine pc) or scsi (q35 + a virtio-scsi controller)
#   TARGET      the cdrom's target dev, e.g. sda (sata, scsi) or hdc (ide)
#   OUTDIR      where build-guest.sh put vmlinuz and initrd.img (absolute; must exist at the same
#               path on every host the guest migrates to)
#   SERIAL_LOG  the file libvirt writes the serial console to (absolute)
#   SOURCE      the ISO in the drive; omitted or empty: an empty drive
#
# Environment (optional):
#   GUEST_MEMORY_MIB   memory, default 128
#   GUEST_CMDLINE_EXTRA  appended to the kernel command line (e.g. "recontext.poll=0.5 recontext.debug=1")
#   GUEST_SERIAL_APPEND  on (default): libvirt appends to SERIAL_LOG; off: truncates it when QEMU starts
#   GUEST_UUID         a fixed domain UUID; default: libvirt picks one
#   GUEST_STARTUP_POLICY  e.g. optional: added as startupPolicy to the cdrom's <source>
#   GUEST_CHANNEL      1 (default): the host-guest channel, a virtio-serial port named
#                      org.recontextd.channel.0 on a unix socket libvirt places; 0: none
#
# TCG (<domain type='qemu'>): the nested KVM on these machines cannot boot a Linux kernel.
# on_reboot and on_crash are destroy: the kernel boots with panic=-1, so a guest that fails stops
# instead of rebooting in a loop.
set -eu

if [ $# -lt 5 ] || [ $# -gt 6 ]; then
    echo "usage: $0 NAME BUS TARGET OUTDIR SERIAL_LOG [SOURCE]" >&2
    exit 2
fi
NAME=$1 BUS=$2 TARGET=$3 OUTDIR=$4 SERIAL_LOG=$5 SOURCE=${6:-}
MEMORY=${GUEST_MEMORY_MIB:-128}
APPEND=${GUEST_SERIAL_APPEND:-on}
CMDLINE="console=ttyS0 quiet panic=-1${GUEST_CMDLINE_EXTRA:+ $GUEST_CMDLINE_EXTRA}"

# XML-escapes text for attributes and element content.
xml() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e "s/'/\&apos;/g" -e 's/"/\&quot;/g'
}

case "$BUS" in
    sata) MACHINE=q35 CONTROLLER="" ;;
    ide) MACHINE=pc CONTROLLER="" ;;
    scsi) MACHINE=q35 CONTROLLER="    <controller type='scsi' index='0' model='virtio-scsi'/>
" ;;
    *)
        echo "$0: BUS must be sata, ide or scsi, not '$BUS'" >&2
        exit 2
        ;;
esac

UUID_LINE=""
[ -n "${GUEST_UUID:-}" ] && UUID_LINE="  <uuid>$(xml "$GUEST_UUID")</uuid>
"
CHANNEL=""
[ "${GUEST_CHANNEL:-1}" = 1 ] && CHANNEL="    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.recontextd.channel.0'/>
    </channel>
"
POLICY=""
[ -n "${GUEST_STARTUP_POLICY:-}" ] && POLICY=" startupPolicy='$(xml "$GUEST_STARTUP_POLICY")'"
SOURCE_LINE=""
[ -n "$SOURCE" ] && SOURCE_LINE="      <source file='$(xml "$SOURCE")'$POLICY/>
"

cat <<EOF
<domain type='qemu'>
  <name>$(xml "$NAME")</name>
${UUID_LINE}  <memory unit='MiB'>$MEMORY</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='$MACHINE'>hvm</type>
    <kernel>$(xml "$OUTDIR/vmlinuz")</kernel>
    <initrd>$(xml "$OUTDIR/initrd.img")</initrd>
    <cmdline>$(xml "$CMDLINE")</cmdline>
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
${CONTROLLER}    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
${SOURCE_LINE}      <target dev='$(xml "$TARGET")' bus='$BUS'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='$(xml "$SERIAL_LOG")' append='$APPEND'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$(xml "$SERIAL_LOG")' append='$APPEND'/>
      <target type='serial' port='0'/>
    </console>
${CHANNEL}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
