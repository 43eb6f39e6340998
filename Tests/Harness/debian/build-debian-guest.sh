#!/bin/sh
# Builds the Debian 12 test guest of recontextd from Debian packages: a bookworm root file system
# with systemd, udev, Debian's kernel and initramfs-tools, cloud-init and openssh-server (for its
# host keys only), as OUTDIR/disk.raw (ext4, the whole disk, no partition table), with the kernel and
# initramfs copied out as OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
# Usage: build-debian-guest.sh OUTDIR
#
# Cached: when the three files and OUTDIR/debian.stamp exist and the stamp matches (the sha256 of
# this script), it does nothing. Concurrent runs on the same OUTDIR are serialised with flock(1).
# The companion (recontext-guest) is NOT in the image: cloud-init installs it from the context
# CD-ROM at first boot, as on a stock cloud image.
#
# What the image has beyond the packages:
#   - apt's timers, e2scrub, fstrim, man-db and the network waits masked (no network: the guest
#     has no NIC); ssh.service and ssh.socket masked (only the host keys matter);
#   - no SSH host keys and an empty machine-id: cloud-init (keys) and systemd (machine-id) make
#     them at first boot, as in a cloud image;
#   - cloud-init looks for NoCloud only, and leaves the network alone;
#   - recontext-test-booted.service prints "RECONTEXT-BOOTED uptime=SECONDS" on /dev/ttyS0 once
#     multi-user.target is reached (the test's boot timing).
#
# Needs: root, mmdebstrap, mkfs.ext4 (e2fsprogs), flock, sha256sum, and the apt sources of this
# machine (the packages come from the same registry: /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list|*.sources are handed to mmdebstrap).
# Environment: DEBIAN_GUEST_DISK_SIZE (default 2G, sparse).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
SIZE=${DEBIAN_GUEST_DISK_SIZE:-2G}

log() { echo "build-debian-guest: $*" >&2; }

exec 9>"$OUTDIR/.build.lock"
flock 9

STAMP="build-debian-guest.sh=$(sha256sum "$HERE/build-debian-guest.sh" | cut -c1-16) size=$SIZE"
if [ -f "$OUTDIR/disk.raw" ] && [ -f "$OUTDIR/vmlinuz" ] && [ -f "$OUTDIR/initrd.img" ] &&
    [ -f "$OUTDIR/debian.stamp" ] && [ "$(cat "$OUTDIR/debian.stamp")" = "$STAMP" ]; then
    log "up to date: $STAMP"
    exit 0
fi
for tool in mmdebstrap mkfs.ext4; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "$tool is missing (apt-get install -y mmdebstrap e2fsprogs)"
        exit 1
    fi
done

# The machine's apt sources, in the order apt reads them.
SOURCES=""
[ -s /etc/apt/sources.list ] && SOURCES=/etc/apt/sources.list
for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$file" ] && SOURCES="$SOURCES $file"
done
if [ -z "$SOURCES" ]; then
    log "no apt sources in /etc/apt/sources.list or /etc/apt/sources.list.d"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/recontext-debian.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT="$WORK/root"

PACKAGES="systemd,systemd-sysv,udev,linux-image-amd64,initramfs-tools,zstd,cloud-init,openssh-server"
MASK="apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer
 systemd-networkd-wait-online.service systemd-networkd.service systemd-networkd.socket
 networking.service ssh.service ssh.socket getty@tty1.service serial-getty@ttyS0.service"

# Before the kernel is installed: an initramfs with only what this guest boots from (virtio-blk,
# ext4; initramfs-tools reads /usr/share/initramfs-tools/modules.d/*), instead of "most" modules:
# a smaller image to build and to unpack under TCG.
cat > "$WORK/essential.sh" <<'HOOK'
#!/bin/sh
set -eu
root=$1
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
echo MODULES=list > "$root/etc/initramfs-tools/conf.d/recontext-test"
printf 'virtio_pci\nvirtio_blk\next4\n' > "$root/usr/share/initramfs-tools/modules.d/recontext-test"
HOOK
chmod 0755 "$WORK/essential.sh"

# The customize hook runs in the finished root (mmdebstrap passes it as $1).
cat > "$WORK/customize.sh" <<HOOK
#!/bin/sh
set -eu
root=\$1
for unit in $(echo $MASK); do ln -sf /dev/null "\$root/etc/systemd/system/\$unit"; done
rm -f "\$root"/etc/ssh/ssh_host_*
: > "\$root/etc/machine-id"
rm -f "\$root/var/lib/dbus/machine-id" "\$root/etc/hostname"
printf '/dev/vda / ext4 rw,noatime 0 0\n' > "\$root/etc/fstab"
mkdir -p "\$root/etc/cloud/cloud.cfg.d"
printf 'datasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\n' \
    > "\$root/etc/cloud/cloud.cfg.d/90-recontext-test.cfg"
cat > "\$root/etc/systemd/system/recontext-test-booted.service" <<'UNIT'
[Unit]
Description=Tell the recontextd test that multi-user.target was reached
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'read up _ < /proc/uptime; echo "RECONTEXT-BOOTED uptime=\$\$up" > /dev/ttyS0'

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/recontext-test-booted.service \
    "\$root/etc/systemd/system/multi-user.target.wants/recontext-test-booted.service"
rm -rf "\$root"/var/lib/apt/lists/* "\$root"/var/cache/apt/*.bin "\$root"/var/cache/apt/archives/*.deb
HOOK
chmod 0755 "$WORK/customize.sh"

START=$(date +%s)
log "mmdebstrap bookworm ($PACKAGES) from $SOURCES"
# force-unsafe-io: no fsync per unpacked file (the root is thrown away if the build fails).
# shellcheck disable=SC2086 # SOURCES is a list of file names without spaces
mmdebstrap --mode=root --variant=apt --format=directory --include="$PACKAGES" \
    --dpkgopt=force-unsafe-io \
    --essential-hook="$WORK/essential.sh \"\$1\"" \
    --customize-hook="$WORK/customize.sh \"\$1\"" \
    bookworm "$ROOT" $SOURCES >&2
log "mmdebstrap: $(($(date +%s) - START)) s"

KERNEL=$(ls "$ROOT"/boot/vmlinuz-* 2>/dev/null | head -n 1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* 2>/dev/null | head -n 1)
if [ -z "$KERNEL" ] || [ -z "$INITRD" ]; then
    log "the root file system has no /boot/vmlinuz-* and /boot/initrd.img-*"
    exit 1
fi

rm -f "$OUTDIR/debian.stamp"
cp "$KERNEL" "$OUTDIR/vmlinuz.tmp"
cp "$INITRD" "$OUTDIR/initrd.img.tmp"
rm -f "$OUTDIR/disk.raw.tmp"
truncate -s "$SIZE" "$OUTDIR/disk.raw.tmp"
mkfs.ext4 -q -F -L debian-root -d "$ROOT" "$OUTDIR/disk.raw.tmp" >&2
chmod 0644 "$OUTDIR/vmlinuz.tmp" "$OUTDIR/initrd.img.tmp" "$OUTDIR/disk.raw.tmp"
mv "$OUTDIR/vmlinuz.tmp" "$OUTDIR/vmlinuz"
mv "$OUTDIR/initrd.img.tmp" "$OUTDIR/initrd.img"
mv "$OUTDIR/disk.raw.tmp" "$OUTDIR/disk.raw"
echo "$STAMP" > "$OUTDIR/debian.stamp"
log "built $OUTDIR/disk.raw ($(du -h "$OUTDIR/disk.raw" | cut -f1) used), vmlinuz ($(basename "$KERNEL")), initrd.img in $(($(date +%s) - START)) s"
