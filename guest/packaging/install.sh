#!/bin/sh
# Installs recontext-guest from this tarball (distributions without the .deb). As root:
#   ./install.sh                 install (DESTDIR and SBINDIR honoured; SBINDIR default /usr/sbin)
#   ./install.sh --uninstall     remove what install put there (hooks in /etc/recontext stay)
# udev rule and units go to /etc/udev/rules.d and /etc/systemd/system (the administrator's places);
# without systemd run `recontext-apply --watch /dev/sr0 &` and `recontext-channel &` from init.
set -e
cd "$(dirname "$0")"
DESTDIR=${DESTDIR:-}
SBINDIR=${SBINDIR:-/usr/sbin}
RULESDIR=${RULESDIR:-/etc/udev/rules.d}
UNITDIR=${UNITDIR:-/etc/systemd/system}
HOOKSDIR=${HOOKSDIR:-/etc/recontext/hooks.d}
DOCDIR=${DOCDIR:-/usr/share/doc/recontext-guest}
systemd_running() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; }

if [ "$1" = --uninstall ]; then
    systemd_running && systemctl disable recontext-apply.service 2>/dev/null || true
    systemd_running && systemctl stop recontext-channel.service 2>/dev/null || true
    rm -f "$DESTDIR$SBINDIR/recontext-apply" "$DESTDIR$SBINDIR/recontext-channel" \
        "$DESTDIR$RULESDIR/65-recontext.rules" "$DESTDIR$RULESDIR/66-recontext-channel.rules" \
        "$DESTDIR$UNITDIR/recontext-apply.service" "$DESTDIR$UNITDIR/recontext-apply@.service" \
        "$DESTDIR$UNITDIR/recontext-channel.service" "$DESTDIR$DOCDIR/README.md"
    rmdir "$DESTDIR$DOCDIR" 2>/dev/null || true
    systemd_running && systemctl daemon-reload || true
    echo "removed recontext-guest (kept $HOOKSDIR)"
    exit 0
fi

mkdir -p "$DESTDIR$SBINDIR" "$DESTDIR$RULESDIR" "$DESTDIR$UNITDIR" "$DESTDIR$HOOKSDIR" "$DESTDIR$DOCDIR"
for program in recontext-apply recontext-channel; do
    cp "$program" "$DESTDIR$SBINDIR/$program"
    chmod 0755 "$DESTDIR$SBINDIR/$program"
done
for unit in recontext-apply.service recontext-apply@.service recontext-channel.service; do
    sed "s|/usr/sbin/recontext-|$SBINDIR/recontext-|" "systemd/$unit" >"$DESTDIR$UNITDIR/$unit"
    chmod 0644 "$DESTDIR$UNITDIR/$unit"
done
for rule in 65-recontext.rules 66-recontext-channel.rules; do
    cp "udev/$rule" "$DESTDIR$RULESDIR/$rule"
done
[ -e "$DESTDIR$HOOKSDIR/README" ] || cp hooks.d/README "$DESTDIR$HOOKSDIR/README"
cp README.md "$DESTDIR$DOCDIR/README.md"
if systemd_running; then
    udevadm control --reload-rules 2>/dev/null || true
    systemctl daemon-reload
    systemctl enable recontext-apply.service
    systemctl --no-block start recontext-apply.service || true
    # The port was there before the rule: start the listener now (udev starts it from now on).
    [ -e /dev/virtio-ports/org.recontextd.channel.0 ] && systemctl --no-block start recontext-channel.service || true
fi
echo "installed recontext-guest $(sed -n 's/^RECONTEXT_VERSION=//p' recontext-apply) in ${DESTDIR:-/}"
