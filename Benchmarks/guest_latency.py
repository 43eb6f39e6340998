#!/usr/bin/python3
"""Event to *guest applied*: a test guest (TCG) running the guest companion, live-migrated between
two private libvirt hosts with the release recontextd "on" each (issue 12's figure).

    sudo /usr/bin/python3 Benchmarks/guest_latency.py --binary RECONTEXTD [--rounds 20] [--bus sata]
        [--modes channel,poll] [--out FILE]
    sudo /usr/bin/python3 Benchmarks/guest_latency.py --binary RECONTEXTD --guest debian
        [--modes channel,udev] [--trace]

`--guest busybox` (default): the busybox test guest (Tests/Harness/guest/). `--guest debian`: the
Debian 12 guest (Tests/Harness/debian/: systemd, udev, Debian's cloud-init), which
installs the companion from the CD at first boot as in DebianGuestTests; its hook prints one line
with the shell's builtins only. `--trace` (debian): the hook also copies the companion's journal
lines with their monotonic stamps to the console (RECONTEXT_LOG_UPTIME=1 in /etc/default/recontext).

Per mode, one guest is booted and migrated A -> B -> A ... `--rounds` times. For each migration:
- t0: the RESUMED event on the destination (libvirt's event, timestamped by this script);
- inserted: the destination's TRAY_CHANGE close (the new image in the drive);
- hook: the guest's hook line `RECONTEXT-HOOK endpoint=E generation=N` in the serial log (read every
  2 ms; the guest writes it after it applied the content and ran its hooks);
- ack (channel mode): the destination's log line "guest applied generation N in X ms" (recontextd's
  own measure, from its receipt of the event to the ack).
Modes: `channel` (the virtio-serial port: the host says "generation N" right after the insert; the
busybox guest's own pollers slowed to 5 s and 30 s, as they are not needed), `poll` (busybox, no
port: the companion's `--watch` polls the drive every second, the busybox guest's only way) and
`udev` (debian, no port: the kernel's media poll, udev's rule, systemd's recontext-apply@sr0).
`--bus` (sata, ide, scsi; the Debian guest: sata or scsi) places the CD-ROM; `--device-mode
scsi-replace` (with --bus scsi) makes both daemons detach and attach the drive ("inserted": libvirt's
DEVICE_ADDED).
`--in-place N` (channel mode, busybox guest): after the migrations, N metadata changes on the host
the guest is on, without a migration (`in_place_event_to_ack_ms`, `in_place_guest_apply_ms`).
`--floor STEPS` (channel mode, busybox guest): the guest runs no companion but the test guest's
floor responder (`recontext.floor=STEPS`, `Tests/Harness/guest/init`): the least a guest can do to
acknowledge the host's line after the steps named (fork, exec, hook, mount, copy; none); its hook
line names no endpoint.
`GUEST_LATENCY_JIT=1`: also QEMU's `info jit` (HMP) after each apply (taints the domain).
Prints one JSON document (p50/p95/max per measure) and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_hosts  # noqa: E402  (the hosts, daemons and event recorder of the other benchmarks)
from real_hosts import Daemon, Host, log, summary  # noqa: E402

import libvirt  # noqa: E402

ROOT = real_hosts.ROOT
GUEST = os.path.join(ROOT, "Tests/Harness/guest")
DEBIAN = os.path.join(ROOT, "Tests/Harness/debian")
ENDPOINTS = {"a": "http://monitor-a.example:9090", "b": "http://monitor-b.example:9090"}


def wait_ack(daemon: Daemon, generation: int) -> tuple[float, float | None]:
    """Waits for the daemon's "guest applied generation N in X ms" line: X (recontextd's measure, from
    its receipt of the event to the ack) and the guest's own `guest.apply_ms`."""
    pattern = re.compile(rf"guest applied generation {generation} in (\d+) ms.*")
    match = wait(lambda: pattern.search(daemon.text()), 30, f"the ack of generation {generation}", step=0.01)
    apply_ms = re.search(r"guest\.apply_ms=(\d+)", match.group(0))
    return float(match.group(1)), float(apply_ms.group(1)) if apply_ms else None


def jit_summary(dom) -> str:
    """`info jit` of the domain's QEMU (HMP through libvirt; taints the domain, for measurements only):
    its TB count and translation buffer use."""
    import libvirt_qemu  # noqa: PLC0415  (only with GUEST_LATENCY_JIT)
    text = libvirt_qemu.qemuMonitorCommand(dom, "info jit", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    keep = [line.strip() for line in text.splitlines()
            if line.strip().startswith(("TB count", "Translation buffer state", "gen code size", "TB flush count"))]
    return "; ".join(keep)


def stats(values: list[float]) -> dict:
    """summary() (median, p99, min, max) plus p95."""
    result = summary(values)
    ordered = sorted(values)
    result["p95"] = ordered[max(0, min(len(ordered) - 1, -(-95 * len(ordered) // 100) - 1))]
    return result


def hook_line(serial: str, generation: int, after: int) -> tuple[float, str] | None:
    """The first hook line for `generation` after byte offset `after`, with the time it was seen."""
    try:
        with open(serial, "rb") as f:
            f.seek(after)
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        start = line.find("RECONTEXT-HOOK")  # text of another console writer may come first
        if start >= 0 and line.rstrip().endswith(f"generation={generation}"):
            return time.monotonic(), line[start:].strip()
    return None


def marker(serial: str, text: str) -> bool:
    try:
        with open(serial, "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def wait(predicate, timeout: float, what: str, step: float = 0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


# The Debian guest's hook: one console line with the shell's builtins only (no program started),
# so that the figure is the companion's, not the hook's. With --trace it also copies the
# companion's journal lines of this boot, stamped with the guest's uptime.
DEBIAN_HOOK = r"""#!/bin/sh
read -r up _ </proc/uptime
endpoint=-
while IFS= read -r line || [ -n "$line" ]; do
    case $line in endpoint=*) endpoint=${line#endpoint=} ;; esac
done <"$RECONTEXT_DIR/etc/monitoring.conf"
echo "RECONTEXT-HOOK uptime=$up trigger=$RECONTEXT_TRIGGER endpoint=$endpoint generation=$RECONTEXT_GENERATION" >/dev/ttyS0
if [ -e /etc/recontext/trace ]; then
    journalctl -b -o short-monotonic -t recontext -n 30 --no-pager | sed 's/^/RECONTEXT-TRACE /' >/dev/ttyS0
fi
"""


def debian_metadata(trace: bool) -> str:
    """NoCloud with the companion from the CD (as DebianGuest.metadata), the hook above."""
    hook = "\n".join("      " + line for line in DEBIAN_HOOK.splitlines())
    files = [
        "write_files:",
        "  - path: /etc/recontext/hooks.d/50-console",
        "    permissions: '0755'",
        "    content: |",
        hook,
    ]
    if trace:
        files += [
            "  - path: /etc/recontext/trace",
            "    content: ''",
            "  - path: /etc/default/recontext",
            "    content: |",
            "      RECONTEXT_LOG_UPTIME=1",
        ]
    user_data = "\n".join([
        "#cloud-config",
        "ssh_genkeytypes: [ed25519]",
        "locale: false",
        "resize_rootfs: false",
        *files,
        "runcmd:",
        "  - [sh, -c, 'mount -o ro LABEL=cidata /mnt && dpkg -i /mnt/recontext/guest/*.deb; umount /mnt']",
        "  - [sh, -c, 'echo RECONTEXT-FIRSTBOOT-DONE > /dev/ttyS0']",
    ]) + "\n"
    return ("<context format='nocloud' hostname='deb-bench' companion='yes'>"
            "<file path='etc/monitoring.conf' template='yes'>endpoint={{host.monitoring_endpoint}}</file>"
            f"<user-data><![CDATA[{user_data}]]></user-data></context>")


def run_mode(binary: str, guest_dir: str, mode: str, bus: str, rounds: int, work: str, guest: str = "busybox",
             in_place_rounds: int = 0,
             companion: str | None = None, trace: bool = False, device_mode: str = "media-change",
             floor: str | None = None) -> dict:
    shared = os.path.join(work, f"shared-{mode}")
    images = os.path.join(shared, "images")
    os.makedirs(images, exist_ok=True)
    hosts = {
        "a": Host(work, f"gl-{mode}-a", "127.0.10.57", "49960-49979", [f"127.0.10.58=gl-{mode}-b"], shared),
        "b": Host(work, f"gl-{mode}-b", "127.0.10.58", "49980-49999", [f"127.0.10.57=gl-{mode}-a"], shared),
    }
    daemons = {}
    try:
        for side in "ab":
            daemons[side] = Daemon(binary, hosts[side], work, images, ENDPOINTS[side], mode=device_mode,
                                   tag=f"-{mode}", companion_directory=companion)
        serial = os.path.join(shared, "serial.log")
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        if guest == "debian":
            # The overlay is a writable cache='none' disk in the shared directory: libvirt takes it
            # for a local file system (Tests/Harness/debian/README.md).
            flags |= libvirt.VIR_MIGRATE_UNSAFE
            disk = os.path.join(shared, "vm.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            os.path.join(guest_dir, "disk.raw"), disk], check=True)
            env = dict(os.environ, DEBIAN_GUEST_CHANNEL="1" if mode == "channel" else "0",
                       DEBIAN_GUEST_CDROM_BUS=bus)
            xml = subprocess.run(
                ["/bin/sh", os.path.join(DEBIAN, "debian-domain.xml.sh"), f"gl-{mode}", guest_dir, disk, serial],
                check=True, capture_output=True, text=True, env=env).stdout
            metadata = debian_metadata(trace)
            boot_timeout = 600
        else:
            target = {"ide": "hdc", "sata": "sda", "scsi": "sda"}[bus]
            env = dict(os.environ, GUEST_CHANNEL="1" if mode == "channel" else "0")
            if mode == "channel":
                # With the channel the guest needs no poll: the test guest's own reader and the
                # companion's --watch are slowed so that they do not compete for its one vCPU.
                env["GUEST_CMDLINE_EXTRA"] = ("recontext.poll=5 recontext.watch=30 "
                                              + (f"recontext.floor={floor} " if floor else "")
                                              + os.environ.get("GUEST_CMDLINE_EXTRA", ""))
            xml = subprocess.run(
                ["/bin/sh", os.path.join(GUEST, "guest-domain.xml.sh"), f"gl-{mode}", bus, target, guest_dir, serial],
                check=True, capture_output=True, text=True, env=env).stdout
            metadata = ("<context format='nocloud'><file path='etc/monitoring.conf' template='yes'>"
                        "endpoint={{host.monitoring_endpoint}}</file></context>")
            boot_timeout = 240
        dom = hosts["a"].conn.defineXML(xml)
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, metadata, "recontext", "urn:recontextd:context:1",
                        libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        booted = time.monotonic()
        dom.create()
        uid = dom.UUIDString()
        if guest == "debian":
            # cloud-init installs the companion at the end of the first boot; its postinst's first
            # apply prints the first hook line. Then the first boot's jobs end before round 1.
            wait(lambda: marker(serial, "RECONTEXT-FIRSTBOOT-DONE"), boot_timeout, "cloud-init's runcmd", step=0.2)
            wait(lambda: hook_line(serial, 1, 0), 120, "the guest's first hook line", step=0.2)
            log(f"guest_latency {mode}: booted, first hook line after {time.monotonic() - booted:.1f} s")
            time.sleep(20)
        else:
            wait(lambda: hook_line(serial, 1, 0), boot_timeout, "the guest's first hook line", step=0.05)
            log(f"guest_latency {mode}: booted, first hook line after {time.monotonic() - booted:.1f} s")
            time.sleep(3)  # the guest settles (its boot-time runs end) before the first measured round
        rows = []
        side, generation = "a", 1
        for round_ in range(rounds):
            source, destination = hosts[side], hosts["b" if side == "a" else "a"]
            daemon = daemons["b" if side == "a" else "a"]
            generation += 1
            offset = os.path.getsize(serial)
            t_start = time.monotonic()
            source.conn.lookupByUUIDString(uid).migrate(destination.conn, flags, None, None, 0)
            t_returned = time.monotonic()
            seen, line = wait(lambda: hook_line(serial, generation, offset), 30 if guest == "busybox" else 120,
                              f"hook line of generation {generation}")
            resumed = destination.recorder.first(uid, t_start, "lifecycle", libvirt.VIR_DOMAIN_EVENT_RESUMED)
            inserted = destination.recorder.inserted_after(uid, t_start, scsi_replace=device_mode == "scsi-replace")
            ack, apply_ms = wait_ack(daemon, generation) if mode == "channel" else (None, None)
            if not floor and f"endpoint={ENDPOINTS[destination.name[-1]]}" not in line:
                raise RuntimeError(f"round {round_}: wrong endpoint in {line!r}")
            rows.append({
                "migrate_ms": (t_returned - t_start) * 1000,
                "event_to_inserted_ms": (inserted - resumed) * 1000 if inserted and resumed else None,
                "event_to_hook_ms": (seen - resumed) * 1000 if resumed else None,
                "event_to_ack_ms": ack,
                "guest_apply_ms": apply_ms,
                "hook": line,
            })
            if os.environ.get("GUEST_LATENCY_JIT"):
                # The destination QEMU's TCG translation buffer (HMP `info jit`) once the guest has
                # applied: how much code the first apply after the arrival had to translate.
                rows[-1]["jit_after_apply"] = jit_summary(destination.conn.lookupByUUIDString(uid))
            log(f"guest_latency {mode} round {round_ + 1}/{rounds}: {rows[-1]}")
            side = destination.name[-1]
            time.sleep(1)
        # In place (channel mode): a metadata change on the host the guest is on now, no migration.
        # The same path from the event to the ack, but the guest's QEMU has run for a while (under
        # TCG its translation cache is warm, where right after an arrival it starts empty).
        in_place = []
        if mode == "channel" and in_place_rounds:
            host, daemon = hosts[side], daemons[side]
            dom_here = host.conn.lookupByUUIDString(uid)
            flags_meta = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
            for index in range(in_place_rounds):
                generation += 1
                changed = metadata.replace("</file>", f"&#10;# in place {index}</file>")
                dom_here.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, changed, "recontext",
                                     "urn:recontextd:context:1", flags_meta)
                ack, apply_ms = wait_ack(daemon, generation)
                if os.environ.get("GUEST_LATENCY_JIT"):
                    log(f"guest_latency {mode} in place {index + 1}: {jit_summary(dom_here)}")
                in_place.append({"event_to_ack_ms": ack, "guest_apply_ms": apply_ms})
                log(f"guest_latency {mode} in place {index + 1}/{in_place_rounds}: {in_place[-1]}")
                time.sleep(1)
        failures = daemons["a"].failures() + daemons["b"].failures()
        if os.environ.get("GUEST_LATENCY_KEEP"):
            keep = os.environ["GUEST_LATENCY_KEEP"]
            subprocess.run(["cp", serial, f"{keep}-{mode}-serial.log"], check=False)
            for side, daemon in daemons.items():
                subprocess.run(["cp", daemon.logpath, f"{keep}-{mode}-daemon-{side}.log"], check=False)
        with open(os.path.join(shared, "serial.log"), errors="replace") as f:
            guest_stats = [line.strip() for line in f if line.startswith("# stats")]
        result = {
            "guest": guest, "mode": mode, "bus": bus, "device_mode": device_mode, "rounds": rounds,
            **({"floor": floor} if floor else {}),
            "failures": failures,
            "guest_stats": guest_stats[-4:],
        }
        for key in ["migrate_ms", "event_to_inserted_ms", "event_to_hook_ms", "event_to_ack_ms", "guest_apply_ms"]:
            values = [row[key] for row in rows if row[key] is not None]
            result[key] = stats(values) if values else None
        for key in ["event_to_ack_ms", "guest_apply_ms"]:
            values = [row[key] for row in in_place if row[key] is not None]
            if values:
                result[f"in_place_{key}"] = stats(values)
        try:
            hosts[side].conn.lookupByUUIDString(uid).destroy()
        except libvirt.libvirtError:
            pass
        return result
    finally:
        for daemon in daemons.values():
            daemon.stop()
        for host in hosts.values():
            host.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--guest-dir")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bus", default="sata")
    parser.add_argument("--modes")
    parser.add_argument("--device-mode", choices=["media-change", "scsi-replace"], default="media-change",
                        help="context.device.mode of both daemons (scsi-replace: --bus scsi)")
    parser.add_argument("--guest", choices=["busybox", "debian"], default="busybox")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--floor", help="channel mode, busybox guest: the floor responder after these steps "
                        "(comma-separated: fork, exec, hook, mount, copy; none) instead of the companion")
    parser.add_argument("--in-place", type=int, default=0,
                        help="channel mode: after the migrations, this many metadata changes with no migration")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.floor and (args.guest != "busybox" or args.modes != "channel"):
        parser.error("--floor needs the busybox guest and --modes channel")
    results = {"load at start (1 min)": open("/proc/loadavg").read().split()[0]}
    with tempfile.TemporaryDirectory(prefix="rc-guest-lat.") as work:
        companion = None
        if args.guest == "debian":
            guest_dir = args.guest_dir or "/var/cache/recontextd-tests/debian"
            modes = args.modes or "channel,udev"
            subprocess.run(["/bin/sh", os.path.join(DEBIAN, "build-debian-guest.sh"), guest_dir], check=True,
                           stdout=subprocess.DEVNULL)
            # The companion's packages, for companion="yes" (as DebianGuest.buildCompanion).
            companion = os.path.join(work, "companion")
            os.makedirs(companion)
            os.chmod(work, 0o755)
            subprocess.run(["make", "-s", "-C", ROOT, "guest-deb", "guest-tarball", f"GEN={companion}/gen",
                            f"OUT={companion}"], check=True)
        else:
            guest_dir = args.guest_dir or "/var/cache/recontextd-tests/guest"
            modes = args.modes or "channel,poll"
            subprocess.run(["/bin/sh", os.path.join(GUEST, "build-guest.sh"), guest_dir], check=True,
                           stdout=subprocess.DEVNULL)
        for mode in modes.split(","):
            results[mode] = run_mode(os.path.abspath(args.binary), guest_dir, mode, args.bus, args.rounds, work,
                                     guest=args.guest, companion=companion, trace=args.trace,
                                     in_place_rounds=args.in_place, device_mode=args.device_mode,
                                     floor=args.floor)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
