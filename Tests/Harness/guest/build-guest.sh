#!/bin/sh
# Builds the recontextd test guest from Debian packages: OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
# Usage: build-guest.sh OUTDIR
#
# Idempotent and cached: when OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/guest.stamp exist and the
# stamp matches (kernel package and version, busybox-static version, sha256 of this script, init,
# mkinitrd.py and the guest companion's recontext-apply and recontext-channel), it does nothing. Otherwise it downloads the current Debian kernel
# (linux-image-<abi>-amd64, the one linux-image-amd64 depends on) and busybox-static with
# `apt-get download` (running `apt-get update` once if the download fails), extracts them with
# `dpkg-deb -x` in a temporary directory, copies the kernel and writes the initramfs with
# mkinitrd.py. Concurrent runs on the same OUTDIR are serialised with flock(1).
#
# Needs: root or a user who may run apt-get download, apt, dpkg-deb, /usr/bin/python3 (standard
# library only), flock (util-linux), sha256sum. Nothing else: no cpio, no depmod.
# Environment: GUEST_KERNEL_PACKAGE overrides the kernel package (e.g. linux-image-6.1.0-56-amd64).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)

# The modules the guest loads (with their dependencies, found by mkinitrd.py): the CD-ROM on SATA
# (ahci), IDE (ata_piix, ata_generic) and virtio-SCSI (virtio_scsi, virtio_pci), the SCSI CD-ROM
# driver and ISO 9660.
# No sd_mod: the guest has no disks (it would add crc64, t10_pi and more). virtio_console: the
# host-guest channel's virtio-serial port (org.recontextd.channel.0).
MODULES="ahci ata_piix ata_generic virtio_pci virtio_scsi sr_mod isofs virtio_console"
# The guest companion, from this repository, into the initramfs's /usr/sbin.
COMPANION_DIR=$(cd "$HERE/../../../guest" && pwd)
COMPANION="recontext-apply recontext-channel"

log() { echo "build-guest: $*" >&2; }

exec 9>"$OUTDIR/.build.lock"
flock 9

# resolve: sets KERNEL_PACKAGE, KERNEL_VERSION and BUSYBOX_VERSION from apt's lists (the candidate
# versions, what apt-get download fetches), with one apt-cache call (each takes about 0.5 s).
resolve() {
    KERNEL_PACKAGE="" KERNEL_VERSION="" BUSYBOX_VERSION=""
    if [ -n "${GUEST_KERNEL_PACKAGE:-}" ]; then
        KERNEL_PACKAGE=$GUEST_KERNEL_PACKAGE
        set -- "$GUEST_KERNEL_PACKAGE" busybox-static
    else
        set -- linux-image-amd64 busybox-static
    fi
    # "Package: linux-image-amd64" ... "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
    eval "$(apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
        /^Package: / { package = $2 }
        /^Version: / && package == "busybox-static" { print "BUSYBOX_VERSION=\"" $2 "\"" }
        /^Version: / && package ~ /^linux-image-[0-9]/ { print "KERNEL_VERSION=\"" $2 "\"" }
        /^Depends: / && package == "linux-image-amd64" {
            if (match($0, /linux-image-[0-9][^ ,]*-amd64 \(= [^)]*\)/)) {
                split(substr($0, RSTART, RLENGTH), part, /[ ()=]+/)
                print "KERNEL_PACKAGE=\"" part[1] "\"; KERNEL_VERSION=\"" part[2] "\""
            } else if (match($0, /linux-image-[0-9][^ ,]*-amd64/)) {
                print "KERNEL_PACKAGE=\"" substr($0, RSTART, RLENGTH) "\""
            }
        }')"
    if [ -n "$KERNEL_PACKAGE" ] && [ -z "$KERNEL_VERSION" ]; then
        KERNEL_VERSION=$(apt-cache policy "$KERNEL_PACKAGE" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2; exit }')
    fi
}

resolve
if [ -z "$KERNEL_PACKAGE" ] || [ -z "$KERNEL_VERSION" ] || [ -z "$BUSYBOX_VERSION" ]; then
    log "package lists do not name the kernel or busybox-static: apt-get update"
    apt-get update -qq >&2
    UPDATED=1
    resolve
fi
if [ -z "$KERNEL_PACKAGE" ] || [ -z "$KERNEL_VERSION" ] || [ -z "$BUSYBOX_VERSION" ]; then
    log "cannot find the kernel package or busybox-static in apt's lists"
    exit 1
fi

STAMP="kernel=$KERNEL_PACKAGE/$KERNEL_VERSION busybox-static=$BUSYBOX_VERSION"
for file in build-guest.sh init mkinitrd.py; do
    STAMP="$STAMP $file=$(sha256sum "$HERE/$file" | cut -c1-16)"
done
for file in $COMPANION; do
    STAMP="$STAMP $file=$(sha256sum "$COMPANION_DIR/$file" | cut -c1-16)"
done

if [ -f "$OUTDIR/vmlinuz" ] && [ -f "$OUTDIR/initrd.img" ] && [ -f "$OUTDIR/guest.stamp" ] &&
    [ "$(cat "$OUTDIR/guest.stamp")" = "$STAMP" ]; then
    log "up to date: $STAMP"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/recontext-guest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir "$WORK/debs" "$WORK/root"
# apt's _apt user cannot write into a root-owned mktemp directory; apt then downloads as root, says so
# in a warning and succeeds. Give it a directory it can write to, to keep the output quiet.
chmod 0755 "$WORK"
chmod 0777 "$WORK/debs"

download() {
    (cd "$WORK/debs" && apt-get download -q "$KERNEL_PACKAGE=$KERNEL_VERSION" "busybox-static=$BUSYBOX_VERSION") >&2
}
if ! download; then
    if [ -n "${UPDATED:-}" ]; then
        log "apt-get download failed"
        exit 1
    fi
    log "apt-get download failed: apt-get update, then again"
    apt-get update -qq >&2
    download
fi

for deb in "$WORK"/debs/*.deb; do
    dpkg-deb -x "$deb" "$WORK/root"
done

KERNEL=$(ls "$WORK"/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
MODULES_DIR=$(ls -d "$WORK"/root/lib/modules/* 2>/dev/null | head -n 1)
BUSYBOX="$WORK/root/bin/busybox"
if [ -z "$KERNEL" ] || [ -z "$MODULES_DIR" ] || [ ! -x "$BUSYBOX" ]; then
    log "the packages did not contain a kernel, its modules and /bin/busybox"
    exit 1
fi

rm -f "$OUTDIR/guest.stamp"
cp "$KERNEL" "$OUTDIR/vmlinuz.tmp"
mv "$OUTDIR/vmlinuz.tmp" "$OUTDIR/vmlinuz"
PROGRAMS=""
for file in $COMPANION; do
    PROGRAMS="$PROGRAMS --program $COMPANION_DIR/$file=usr/sbin/$file"
done
# shellcheck disable=SC2086 # PROGRAMS and MODULES are word lists (paths without blanks)
ORDER=$(/usr/bin/python3 "$HERE/mkinitrd.py" --kernel-modules "$MODULES_DIR" --busybox "$BUSYBOX" \
    --init "$HERE/init" --output "$OUTDIR/initrd.img" $PROGRAMS $MODULES)
chmod 0644 "$OUTDIR/vmlinuz" "$OUTDIR/initrd.img"
echo "$STAMP" > "$OUTDIR/guest.stamp"
log "built $OUTDIR/vmlinuz ($(basename "$KERNEL")) and $OUTDIR/initrd.img ($(wc -c < "$OUTDIR/initrd.img") bytes)"
log "modules, in load order: $ORDER"
