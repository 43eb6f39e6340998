#!/usr/bin/python3
"""The guest side of the host-guest channel, for real: the busybox test guest on a private libvirt host.

Run as root (standard library only); GuestChannelGuestTests runs it:

    /usr/bin/python3 Tests/Harness/guest/channel-check.py --guest-dir /var/cache/recontextd-tests/guest \
        [--recontextd .build/debug/recontextd] [--bus sata] [--rounds 5] [--idle 10] [--keep]

No recontextd and no channel code of the daemon: this script plays the host's part. It starts a libvirt
host (../libvirt_host.py), builds context images (`recontextd build-iso`, else genisoimage), boots the
guest (build-guest.sh's OUTDIR, guest-domain.xml.sh with the channel) with generation 1 in the drive,
then:

1. waits for `RECONTEXT guest-ready` and the hook's `RECONTEXT-HOOK endpoint=E1 generation=1` (the
   companion's --watch applied the boot disc);
2. finds the channel's unix socket in the live XML (`<source mode='bind' path=.../>`, a path inside the
   host's /var/lib/libvirt, which is STATE/lib outside), and --connect-delay seconds later (the
   listener gave up its first hello: no host end) connects and sends
   `recontext/1 generation 1 hash=H1` (the host speaks first when it opens the port): expects
   `recontext/1 hello version=V applied=1 hash=H1`, then the ack of generation 1 again;
3. each round: a forced media change to generation N (virsh change-media), then at once
   `recontext/1 generation N hash=HN`; expects `recontext/1 applied N result=ok hash=HN ...` on the socket
   and `RECONTEXT-HOOK endpoint=EN generation=N` on the serial console; measures the time from the line
   written to the ack read;
4. idle: with the socket connected (the listener blocks in read) and then closed (end-of-file: it
   polls with backoff up to 1 s), `--idle` seconds each, reads the guest's `# stats` lines
   (recontext.stats=1) and reports the listener's CPU and RSS.

Prints one JSON line with the figures and exits 0, or prints what failed and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.dirname(HERE)
PORT_NAME = "org.recontextd.channel.0"
UUID = "6f1e2c3a-0000-4000-8000-00000000c4a1"


class CheckFailed(Exception):
    """A step did not give what it should."""


def log(message: str) -> None:
    print(f"channel-check: {message}", file=sys.stderr, flush=True)


def make_image(work: str, generation: int, host: str, builder: str | None) -> tuple[str, str, str]:
    """A context image as recontextd writes one; returns (path, hash, endpoint)."""
    endpoint = f"http://mon-{host}-{generation}.example:9090"
    tree = os.path.join(work, f"tree-{generation}")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(os.path.join(tree, "recontext"))
    os.makedirs(os.path.join(tree, "etc"))
    content = f"endpoint={endpoint}\n"
    digest = hashlib.sha256(f"{generation}/{host}/{content}".encode()).hexdigest()
    with open(os.path.join(tree, "etc", "monitoring.conf"), "w") as f:
        f.write(content)
    with open(os.path.join(tree, "meta-data"), "w") as f:
        f.write(f"instance-id: {UUID}\nlocal-hostname: channel-guest\n")
    with open(os.path.join(tree, "recontext", "generation.json"), "w") as f:
        json.dump({"content_hash": digest, "domain_uuid": UUID, "generation": generation, "host": host}, f, indent=2)
    with open(os.path.join(tree, "recontext", "context.json"), "w") as f:
        json.dump({"format": "nocloud", "host": {"name": host}}, f, indent=2)
    image = os.path.join(work, f"ctx-{generation}.iso")
    if builder:
        command = [builder, "build-iso", "--volume-id", "cidata", "--output", image, tree]
    else:
        command = ["genisoimage", "-quiet", "-V", "cidata", "-r", "-J", "-o", image, tree]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    os.chmod(image, 0o644)
    return image, digest, endpoint


class Host:
    """A private libvirt host (libvirt_host.py), stopped by closing its stdin."""

    def __init__(self, state: str, shared: str):
        self.process = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HARNESS, "libvirt_host.py"), "--state-dir", state,
             "--hostname", "chan-host", "--address", "127.0.10.31", "--migration-ports", "51072-51135",
             "--shared-dir", shared, "--qemu-caps-cache", os.path.join(tempfile.gettempdir(), "recontextd-test-qemu-caps")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.process.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise CheckFailed(f"libvirt host did not start: {ready}")
        self.uri = ready["uri"]
        self.state = state

    def virsh(self, *arguments: str) -> str:
        result = subprocess.run(["virsh", "-q", "-c", self.uri, *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            raise CheckFailed(f"virsh {' '.join(arguments)}: {result.stderr.strip()}")
        return result.stdout

    def outside(self, path: str) -> str:
        """The path, seen from here, of a path under the host's /var/lib/libvirt."""
        prefix = "/var/lib/libvirt/"
        if not path.startswith(prefix):
            raise CheckFailed(f"channel socket {path} is not under {prefix}")
        return os.path.join(self.state, "lib", path[len(prefix):])

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Serial:
    """The guest's serial log: lines as they come."""

    def __init__(self, path: str):
        self.path = path
        self.seen = 0

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def wait(self, pattern: str, timeout: float) -> str:
        """The first line after those already waited for that matches pattern."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            lines = self.lines()
            for index in range(self.seen, len(lines)):
                if regex.search(lines[index]):
                    self.seen = index + 1
                    return lines[index]
            time.sleep(0.02)
        raise CheckFailed(f"no serial line matching {pattern!r} in {timeout} s; last: {self.lines()[-8:]}")


class Channel:
    """The host end of the channel: the unix socket libvirt's QEMU listens on."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""
        self.received: list[str] = []

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def wait(self, prefix: str, timeout: float) -> str:
        """The next line starting with prefix (others are kept in received)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                line = raw.decode("ascii", "replace")
                self.received.append(line)
                if line.startswith(prefix):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no {prefix!r} from the guest in {timeout} s; received {self.received[-6:]}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                raise CheckFailed("the channel socket closed")
            self.buffer += data

    def close(self) -> None:
        self.sock.close()


def stats(serial: Serial, after_uptime: float) -> tuple[float, int, int]:
    """The guest's last `# stats` line: (uptime, channel CPU ticks, channel RSS KiB)."""
    for line in reversed(serial.lines()):
        match = re.match(r"# stats uptime=([0-9.]+) .*channel=\d+:(\d+):(\d+)", line)
        if match and float(match.group(1)) >= after_uptime:
            return float(match.group(1)), int(match.group(2)), int(match.group(3))
    raise CheckFailed("no '# stats' line with the channel listener")


def idle(serial: Serial, seconds: float) -> dict:
    """The listener's CPU share and RSS over `seconds` of idling (after 3 s to settle)."""
    deadline = time.monotonic() + seconds + 20
    settled = stats(serial, 0)[0] + 3
    while stats(serial, 0)[0] < settled and time.monotonic() < deadline:
        time.sleep(0.2)
    first = stats(serial, 0)
    while time.monotonic() < deadline:
        last = stats(serial, 0)
        if last[0] - first[0] >= seconds:
            return {"seconds": round(last[0] - first[0], 2), "cpu_ticks": last[1] - first[1],
                    "cpu_percent": round((last[1] - first[1]) / (last[0] - first[0]), 3), "rss_kib": last[2]}
        time.sleep(0.2)
    raise CheckFailed("the guest stopped printing '# stats' lines")


def greet(path: str, generation: int, digest: str, applied: str) -> Channel:
    """Connects to the channel socket and announces a generation the guest has applied already:
    expects a hello whose `applied=...` matches the pattern `applied`, then the ack again."""
    channel = Channel(path)
    channel.send(f"recontext/1 generation {generation} hash={digest}")
    hello = channel.wait("recontext/1 hello ", 20)
    if not re.fullmatch(rf"recontext/1 hello version=[A-Za-z0-9.+~-]+ applied=(?:{applied})", hello):
        raise CheckFailed(f"hello: {hello} (wanted applied={applied})")
    ack = channel.wait("recontext/1 applied ", 20)
    if not ack.startswith(f"recontext/1 applied {generation} result=ok hash={digest} host=chan-host "):
        raise CheckFailed(f"ack of generation {generation} again: {ack}")
    return channel


def rounds(host: Host, channel: Channel, serial: Serial, target: str, images: dict, count: int) -> dict:
    """Media changes, each announced on the channel at once: the acks, their latency, the hook's lines."""
    latencies, triggers = [], []
    for generation in range(2, count + 2):
        image, digest, endpoint = images[generation]
        host.virsh("change-media", "channel-guest", target, image, "--update", "--live", "--force")
        start = time.monotonic()
        channel.send(f"recontext/1 generation {generation} hash={digest}")
        ack = channel.wait(f"recontext/1 applied {generation} ", 30)
        latencies.append(time.monotonic() - start)
        pattern = rf"recontext/1 applied {generation} result=ok hash={digest} host=chan-host trigger=(\S+) " \
            r"hooks=50-print-endpoint:ok ms=\d+"
        found = re.fullmatch(pattern, ack)
        if not found:
            raise CheckFailed(f"ack of generation {generation}: {ack}")
        triggers.append(found.group(1))
        serial.wait(rf"^RECONTEXT-HOOK endpoint={re.escape(endpoint)} generation={generation}$", 30)
        log(f"generation {generation}: {ack} after {latencies[-1] * 1000:.0f} ms")
    return {"line_to_ack_ms": [round(x * 1000) for x in latencies],
            "line_to_ack_median_ms": round(statistics.median(latencies) * 1000), "triggers": triggers}


def run(a: argparse.Namespace, work: str) -> dict:
    shared = os.path.join(work, "shared")
    os.makedirs(shared)
    host = Host(os.path.join(work, "h"), shared)
    try:
        images = {g: make_image(shared, g, "chan-host", a.recontextd) for g in range(1, a.rounds + 2)}
        serial = Serial(os.path.join(shared, "serial.log"))
        target = {"sata": "sda", "ide": "hdc", "scsi": "sda"}[a.bus]
        environment = dict(os.environ, GUEST_UUID=UUID, GUEST_CMDLINE_EXTRA=" ".join(
            ["recontext.stats=1"] + (["recontext.debug=1"] if a.debug else []) + a.cmdline))
        xml = subprocess.run(
            ["/bin/sh", os.path.join(HERE, "guest-domain.xml.sh"), "channel-guest", a.bus, target, a.guest_dir,
             serial.path, images[1][0]], check=True, capture_output=True, text=True, env=environment).stdout
        with open(os.path.join(work, "domain.xml"), "w") as f:
            f.write(xml)
        host.virsh("define", os.path.join(work, "domain.xml"))
        host.virsh("start", "channel-guest")
        serial.wait(r"^RECONTEXT guest-ready$", 240)
        serial.wait(rf"^RECONTEXT-HOOK endpoint={re.escape(images[1][2])} generation=1$", 60)

        live = host.virsh("dumpxml", "channel-guest")
        match = re.search(r"<channel type='unix'>\s*<source mode='bind' path='([^']+)'/>\s*<target type='virtio' "
                          rf"name='{re.escape(PORT_NAME)}'", live)
        if not match:
            raise CheckFailed(f"no bound channel {PORT_NAME} in the live XML:\n{live}")
        socket_path = host.outside(match.group(1))
        # The listener's hello from its start waits in the guest's write until a host end connects
        # (Linux's virtio_console blocks it) and is given up after 1 s: a host end that connects
        # later gets a fresh hello naming generation 1 when it speaks; one that connects earlier
        # gets that first hello (applied=0 when it was written before the boot disc was applied).
        time.sleep(a.connect_delay)
        first = rf"1 hash={images[1][1]}" if a.connect_delay >= 2 else rf"0 hash=-|1 hash={images[1][1]}"
        channel = greet(socket_path, 1, images[1][1], first)
        figures: dict = {"first_lines": list(channel.received)}
        figures.update(rounds(host, channel, serial, target, images, a.rounds))
        figures["idle_connected"] = idle(serial, a.idle)
        channel.close()
        figures["idle_disconnected"] = idle(serial, a.idle)

        # The port comes back: a fresh hello naming the last generation, then its ack again. The
        # listener polls with backoff (at most 1 s) while no host end is connected.
        last = a.rounds + 1
        start = time.monotonic()
        greet(socket_path, last, images[last][1], f"{last} hash={images[last][1]}").close()
        figures["reconnect_line_to_ack_ms"] = round((time.monotonic() - start) * 1000)
        figures["serial_tail"] = [line for line in serial.lines() if line.startswith("RECONTEXT")][-4:]
        host.virsh("destroy", "channel-guest")
        return figures
    finally:
        host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--guest-dir", required=True, help="build-guest.sh's OUTDIR (vmlinuz, initrd.img)")
    parser.add_argument("--recontextd", help="recontextd binary for build-iso (default: genisoimage)")
    parser.add_argument("--bus", default="sata", choices=["sata", "ide", "scsi"])
    parser.add_argument("--rounds", type=int, default=5, help="media changes announced on the channel")
    parser.add_argument("--idle", type=float, default=10, help="seconds of each idle measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--debug", action="store_true", help="recontext.debug=1: the companion logs on the console")
    parser.add_argument("--connect-delay", type=float, default=5,
                        help="seconds between the boot disc's hook line and connecting; 2 or more: the "
                             "listener's first hello was given up, the first one must be fresh")
    parser.add_argument("--cmdline", action="append", default=[], help="more guest kernel options (recontext.poll=2)")
    a = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gch-", dir="/tmp")
    try:
        figures = run(a, work)
        print(json.dumps(figures), flush=True)
        return 0
    except (CheckFailed, subprocess.CalledProcessError) as error:
        print(f"channel-check: FAILED: {error}", flush=True)
        log(f"work directory: {work}")
        a.keep = True
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
