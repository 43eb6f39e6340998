#!/usr/bin/python3
"""Event to *guest applied*: the busybox test guest (TCG) running the guest companion, live-migrated
between two private libvirt hosts with the release recontextd "on" each (issue 12's figure).

    sudo /usr/bin/python3 Benchmarks/guest_latency.py --binary RECONTEXTD [--rounds 20] [--bus sata]
        [--modes channel,poll] [--out FILE]

Per mode, one guest is booted and migrated A -> B -> A ... `--rounds` times. For each migration:
- t0: the RESUMED event on the destination (libvirt's event, timestamped by this script);
- inserted: the destination's TRAY_CHANGE close (the new image in the drive);
- hook: the guest's hook line `RECONTEXT-HOOK endpoint=E generation=N` in the serial log (read every
  2 ms; the guest writes it after it applied the content and ran its hooks);
- ack (channel mode): the destination's log line "guest applied generation N in X ms" (recontextd's
  own measure, from its receipt of the event to the ack).
Modes: `channel` (the virtio-serial port: the host says "generation N" right after the insert; the
test guest's own pollers slowed to 5 s and 30 s, as they are not needed) and `poll` (no port: the
companion's `--watch` polls the drive every second, the busybox guest's only way). Prints one
JSON document (p50/p95/max per measure) and writes it to --out.
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
ENDPOINTS = {"a": "http://monitor-a.example:9090", "b": "http://monitor-b.example:9090"}


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
        if line.startswith("RECONTEXT-HOOK") and line.rstrip().endswith(f"generation={generation}"):
            return time.monotonic(), line.strip()
    return None


def wait(predicate, timeout: float, what: str, step: float = 0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def run_mode(binary: str, guest_dir: str, mode: str, bus: str, rounds: int, work: str) -> dict:
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
            daemons[side] = Daemon(binary, hosts[side], work, images, ENDPOINTS[side], tag=f"-{mode}")
        serial = os.path.join(shared, "serial.log")
        target = {"ide": "hdc", "sata": "sda", "scsi": "sda"}[bus]
        env = dict(os.environ, GUEST_CHANNEL="1" if mode == "channel" else "0")
        if mode == "channel":
            # With the channel the guest needs no poll: the test guest's own reader and the
            # companion's --watch are slowed so that they do not compete for its one vCPU.
            env["GUEST_CMDLINE_EXTRA"] = "recontext.poll=5 recontext.watch=30 " + os.environ.get("GUEST_CMDLINE_EXTRA", "")
        xml = subprocess.run(
            ["/bin/sh", os.path.join(GUEST, "guest-domain.xml.sh"), f"gl-{mode}", bus, target, guest_dir, serial],
            check=True, capture_output=True, text=True, env=env).stdout
        dom = hosts["a"].conn.defineXML(xml)
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            "<context format='nocloud'><file path='etc/monitoring.conf' template='yes'>"
            "endpoint={{host.monitoring_endpoint}}</file></context>",
            "recontext", "urn:recontextd:context:1", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        booted = time.monotonic()
        dom.create()
        uid = dom.UUIDString()
        wait(lambda: hook_line(serial, 1, 0), 240, "the guest's first hook line", step=0.05)
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
            source.conn.lookupByUUIDString(uid).migrate(
                destination.conn,
                libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE,
                None, None, 0)
            t_returned = time.monotonic()
            seen, line = wait(lambda: hook_line(serial, generation, offset), 30, f"hook line of generation {generation}")
            resumed = destination.recorder.first(uid, t_start, "lifecycle", libvirt.VIR_DOMAIN_EVENT_RESUMED)
            inserted = destination.recorder.inserted_after(uid, t_start)
            ack = None
            if mode == "channel":
                pattern = re.compile(rf"guest applied generation {generation} in (\d+) ms.*")
                match = wait(lambda: pattern.search(daemon.text()), 30, f"the ack of generation {generation}",
                             step=0.01)
                ack = float(match.group(1))
                apply_ms = re.search(r"guest\.apply_ms=(\d+)", match.group(0))
            if f"endpoint={ENDPOINTS[destination.name[-1]]}" not in line:
                raise RuntimeError(f"round {round_}: wrong endpoint in {line!r}")
            rows.append({
                "migrate_ms": (t_returned - t_start) * 1000,
                "event_to_inserted_ms": (inserted - resumed) * 1000 if inserted and resumed else None,
                "event_to_hook_ms": (seen - resumed) * 1000 if resumed else None,
                "event_to_ack_ms": ack,
                "guest_apply_ms": float(apply_ms.group(1)) if mode == "channel" and apply_ms else None,
            })
            log(f"guest_latency {mode} round {round_ + 1}/{rounds}: {rows[-1]}")
            side = destination.name[-1]
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
            "mode": mode, "bus": bus, "rounds": rounds, "failures": failures,
            "guest_stats": guest_stats[-4:],
        }
        for key in ["migrate_ms", "event_to_inserted_ms", "event_to_hook_ms", "event_to_ack_ms", "guest_apply_ms"]:
            values = [row[key] for row in rows if row[key] is not None]
            result[key] = stats(values) if values else None
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
    parser.add_argument("--guest-dir", default="/var/cache/recontextd-tests/guest")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bus", default="sata")
    parser.add_argument("--modes", default="channel,poll")
    parser.add_argument("--out")
    args = parser.parse_args()
    subprocess.run(["/bin/sh", os.path.join(GUEST, "build-guest.sh"), args.guest_dir], check=True,
                   stdout=subprocess.DEVNULL)
    results = {"load at start (1 min)": open("/proc/loadavg").read().split()[0]}
    with tempfile.TemporaryDirectory(prefix="rc-guest-lat.") as work:
        for mode in args.modes.split(","):
            results[mode] = run_mode(os.path.abspath(args.binary), args.guest_dir, mode, args.bus, args.rounds, work)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
