#!/usr/bin/python3
"""Benchmarks 2-5 of issue 7 on real libvirt hosts with QEMU (run by scripts/bench, as root).

Uses the test harness (Tests/Harness/libvirt_host.py) to start two private libvirt hosts on this
machine, hv-a (127.0.10.53) and hv-b (127.0.10.54), sharing one image directory, and runs the
release `recontextd run` "on" each (nsenter into the host's namespaces), as scripts/demo does.
A libvirt event client here (python3-libvirt) timestamps the events it sees (monotonic clock), so
"inserted" can be seen from outside the daemon: the TRAY_CHANGE close that QEMU emits when the
new medium is in (field notes section 2).

    /usr/bin/python3 Benchmarks/real_hosts.py --binary PATH --out results.json [--only pipeline,...]
        [--runs 50] [--pairs 20] [--storm-vms 50] [--migration-storm-vms 20] [--idle-seconds 60]
        [--during-idle 'COMMAND'] [--test-node-domains 1000]

Parts: pipeline (phases per bus, 50 metadata changes each), migration (interleaved pairs with and
without recontextd), storms (SIGHUP + host variable; metadata on every VM; VMs arriving together
by migration), idle (CPU and memory of an idle daemon on a real host and of one with 1000 domains
on the test driver). Everything it starts is stopped by PID at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

import libvirt  # python3-libvirt (Debian)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "Tests/Harness/libvirt_host.py")
NS = "urn:recontextd:context:1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[real-hosts {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict:
    s = sorted(values)
    if not s:
        return {"n": 0}
    n = len(s)
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = max(0, min(n - 1, -(-99 * n // 100) - 1))
    return {"n": n, "median": med, "p99": s[rank], "min": s[0], "max": s[-1]}


# MARK: - Event recorder (libvirt's default event loop on a thread of its own)

libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=_event_loop, daemon=True).start()


class Recorder:
    """Timestamps (time.monotonic) every lifecycle, tray and metadata event of a connection."""

    def __init__(self, conn: libvirt.virConnect) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, str, str, int, int]] = []  # (t, uuid, kind, a, b)
        self.ids = [
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None),
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE, self._tray, None),
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, self._added, None),
        ]
        self.conn = conn

    def _add(self, dom, kind, a=0, b=0) -> None:
        t = time.monotonic()
        with self.lock:
            self.events.append((t, dom.UUIDString(), kind, a, b))

    def _lifecycle(self, _c, dom, event, detail, _o) -> None:
        self._add(dom, "lifecycle", event, detail)

    def _tray(self, _c, dom, _alias, reason, _o) -> None:
        self._add(dom, "tray", reason)

    def _added(self, _c, dom, _alias, _o) -> None:
        self._add(dom, "added")

    def inserted_after(self, uuid: str, t0: float, scsi_replace: bool = False) -> float | None:
        """The first 'medium in' after t0: TRAY_CHANGE close, or DEVICE_ADDED (SCSI replace)."""
        with self.lock:
            for t, u, kind, a, _ in self.events:
                if t >= t0 and u == uuid and ((kind == "tray" and a == 1 and not scsi_replace) or (kind == "added" and scsi_replace)):
                    return t
        return None

    def first(self, uuid: str, t0: float, kind: str, a: int, b: int | None = None) -> float | None:
        with self.lock:
            for t, u, k, ea, eb in self.events:
                if t >= t0 and u == uuid and k == kind and ea == a and (b is None or eb == b):
                    return t
        return None


# MARK: - Hosts and daemons


class Host:
    def __init__(self, work: str, name: str, address: str, ports: str, peers: list[str], shared: str) -> None:
        self.name = name
        self.state = os.path.join(work, name)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", HARNESS, "--state-dir", self.state, "--hostname", name, "--address", address,
             "--migration-ports", ports, "--shared-dir", shared, "--qemu-caps-cache", "/tmp/recontextd-test-qemu-caps",
             "--remove-state-dir-on-exit"] + sum((["--hosts-entry", p] for p in peers), []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.proc.stdout.readline())
        if not ready.get("ready"):
            raise RuntimeError(f"host {name} did not start: {ready}")
        self.uri = ready["uri"]
        self.libvirtd_pid = ready["libvirtd_pid"]
        self.conn = libvirt.open(self.uri)
        self.recorder = Recorder(self.conn)

    def stop(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Daemon:
    def __init__(self, binary: str, host: Host, work: str, images: str, endpoint: str, mode: str = "media-change",
                 tag: str = "", companion_directory: str | None = None) -> None:
        self.host = host
        base = os.path.join(work, f"d-{host.name}{tag}")
        os.makedirs(base, exist_ok=True)
        self.config = os.path.join(base, "recontextd.yaml")
        self.metrics_socket = os.path.join(base, "m.sock")
        self.images = images
        self.mode = mode
        self.companion_directory = companion_directory
        self.write_config(endpoint)
        self.logpath = os.path.join(base, "recontextd.log")
        self.logfile = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            ["nsenter", "--target", str(host.libvirtd_pid), "--mount", "--uts", "--pid", "--", binary, "run",
             "--config", self.config, "--state-dir", os.path.join(base, "state"), "--log-target", "stderr"]
            + (["--log-level", os.environ["BENCH_LOG_LEVEL"]] if os.environ.get("BENCH_LOG_LEVEL") else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.logfile)
        self.pid = None
        for _ in range(500):
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    kids = f.read().split()
                if kids:
                    self.pid = int(kids[0])
                    break
            except OSError:
                pass
            time.sleep(0.01)
        self.offset = 0
        self.wait_log("connected to libvirt", 30)

    def write_config(self, endpoint: str) -> None:
        with open(self.config, "w") as f:
            f.write(f"""libvirt:
  uri: qemu:///system
images:
  directory: {self.images}
  mode: "0644"
  shared: true
host:
  name: {self.host.name}
  variables:
    monitoring_endpoint: {endpoint}
    ntp_server: 127.0.0.123
context:
  device:
    mode: {self.mode}
{f"  companion-directory: {self.companion_directory}{chr(10)}" if self.companion_directory else ""}pipeline:
  reconcile-interval: 0
metrics:
  listen: unix:{self.metrics_socket}
""")

    def text(self) -> str:
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def wait_log(self, needle: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return
            time.sleep(0.02)
        raise RuntimeError(f"daemon on {self.host.name}: no '{needle}' in {timeout} s:\n{self.text()[-3000:]}")

    def applied_lines(self, uuid: str | None = None) -> list[dict]:
        out = []
        for line in self.text().splitlines():
            if " context applied " not in line:
                continue
            fields = dict(re.findall(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)', line))
            if uuid is None or fields.get("domain.uuid") == uuid:
                out.append(fields)
        return out

    def failures(self) -> list[str]:
        return [l for l in self.text().splitlines() if " run failed " in l]

    def metrics(self) -> dict[str, float]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.metrics_socket)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        out = {}
        for line in data.decode().split("\r\n\r\n", 1)[-1].splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out

    def proc_status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return -1

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self) -> None:
        if self.pid and self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.logfile.close()


# MARK: - Domains

KVM = os.path.exists("/dev/kvm")


def domain_xml(name: str, uid: str, bus: str, source: str | None = None) -> str:
    machine = "pc" if bus == "ide" else "q35"
    target = {"ide": "hdc", "sata": "sda", "scsi": "sda"}[bus]
    src = f"<source file='{source}'/>" if source else ""
    scsi = "<controller type='scsi' model='virtio-scsi'/>" if bus == "scsi" else ""
    return f"""<domain type='{"kvm" if KVM else "qemu"}'>
  <name>{name}</name><uuid>{uid}</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <metadata><recontext:context xmlns:recontext="{NS}" format="nocloud"><recontext:var name="seq">0</recontext:var><recontext:file path="etc/monitoring.conf" template="yes">endpoint={{{{host.monitoring_endpoint}}}} seq={{{{vm.seq}}}}</recontext:file></recontext:context></metadata>
  <devices>{scsi}
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>{src}<target dev='{target}' bus='{bus}'/><readonly/></disk>
    <controller type='usb' model='none'/><memballoon model='none'/>
  </devices>
</domain>"""


def set_seq(dom: libvirt.virDomain, seq: int) -> None:
    xml = (f'<context format="nocloud"><var name="seq">{seq}</var><file path="etc/monitoring.conf" template="yes">'
           'endpoint={{host.monitoring_endpoint}} seq={{vm.seq}}</file></context>')
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, "recontext", NS,
                    libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def wait_until(pred, timeout: float, what: str, step: float = 0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def start_vms(host: Host, names_buses: list[tuple[str, str]]) -> dict[str, libvirt.virDomain]:
    doms = {}
    for name, bus in names_buses:
        dom = host.conn.defineXML(domain_xml(name, str(uuidlib.uuid4()), bus))
        dom.create()
        doms[name] = dom
    return doms


def metric(m: dict, name: str) -> float:
    return m.get(name, 0.0)


# MARK: - 2. Pipeline phases


def bench_pipeline(ctx, runs: int) -> dict:
    a = ctx.host_a
    results = {}
    configs = [("sata", "media-change"), ("ide", "media-change"), ("scsi", "media-change"), ("scsi", "scsi-replace")]
    doms = start_vms(a, [(f"pipe-{bus}-{mode}", bus) for bus, mode in configs])
    log(f"pipeline: {len(doms)} VMs started; waiting 12 s for SeaBIOS to settle (it keeps a vCPU busy at first)")
    time.sleep(12)
    for bus, mode in configs:
        name = f"pipe-{bus}-{mode}"
        dom = doms[name]
        uid = dom.UUIDString()
        d = Daemon(ctx.binary, a, ctx.work, ctx.images, "http://monitor-a.example:9090", mode=mode, tag=f"-{bus}-{mode}")
        ctx.daemons.append(d)
        try:
            # The first daemon applies to every VM at its start; later ones find them unchanged.
            wait_until(lambda: any(("context applied" in l or "context unchanged" in l) and uid in l
                                   for l in d.text().splitlines()) or None, 30, f"first apply of {name}", 0.02)
        except RuntimeError:
            raise RuntimeError(f"no first apply of {name}; daemon log:\n{d.text()[-4000:]}")
        time.sleep(0.3)
        rows = []
        for i in range(1, runs + 1):
            before = len(d.applied_lines(uid))
            m0 = d.metrics()
            t0 = time.monotonic()
            set_seq(dom, 1000 * len(results) + i)
            t_set = time.monotonic()
            line = wait_until(lambda: (l := d.applied_lines(uid))[before:] and l[-1], 30, f"run {i} of {name}")
            t_log = time.monotonic()
            m1 = d.metrics()
            def exact(h):  # this run's value of a histogram (its _count went up by exactly one)
                count = metric(m1, h + "_count") - metric(m0, h + "_count")
                return (metric(m1, h + "_sum") - metric(m0, h + "_sum")) * 1000 if count == 1 else None
            e2i = exact("recontextd_event_to_inserted_seconds")
            e2a = exact("recontextd_event_to_applied_seconds")
            ins = a.recorder.inserted_after(uid, t0, scsi_replace=(mode == "scsi-replace"))
            rows.append({
                "resolve_ms": float(line.get("duration.resolve_ms", 0)), "eject_ms": float(line.get("duration.eject_ms", 0)),
                "build_ms": float(line.get("duration.build_ms", 0)), "insert_ms": float(line.get("duration.insert_ms", 0)),
                "persist_ms": float(line.get("duration.persist_ms", 0)),
                "record_ms": float(line.get("duration.record_ms", 0)),
                "total_ms": float(line.get("duration.total_ms", 0)), "event_to_inserted_ms": e2i,
                "event_to_applied_ms": e2a,
                "set_metadata_rpc_ms": (t_set - t0) * 1000,
                "external_set_to_medium_in_ms": (ins - t0) * 1000 if ins else None,
                "external_set_to_log_ms": (t_log - t0) * 1000, "trigger": line.get("run.trigger"),
            })
            time.sleep(0.05)
        d.stop()
        ctx.daemons.remove(d)
        key = f"{bus}/{mode}"
        res = {"runs": rows}
        for field in ["resolve_ms", "eject_ms", "build_ms", "insert_ms", "persist_ms", "record_ms", "total_ms",
                      "event_to_inserted_ms", "event_to_applied_ms", "external_set_to_medium_in_ms",
                      "set_metadata_rpc_ms"]:
            res[field] = summary([r[field] for r in rows if r[field] is not None])
        results[key] = res
        log(f"pipeline {key}: total median {res['total_ms'].get('median', 0):.1f} ms, event->inserted median "
            f"{res['event_to_inserted_ms'].get('median', 0):.1f} ms")
    for dom in doms.values():
        dom.destroy()
        dom.undefine()
    return results


# MARK: - 3. Migration overhead


def migrate(src: Host, dst: Host, dom_name: str) -> tuple[float, float, str]:
    dom = src.conn.lookupByName(dom_name)
    uid = dom.UUIDString()
    flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    t0 = time.monotonic()
    dom.migrate(dst.conn, flags, None, None, 0)
    return t0, time.monotonic(), uid


def bench_migration(ctx, pairs: int) -> dict:
    a, b = ctx.host_a, ctx.host_b
    name = "mig-vm"
    dom = a.conn.defineXML(domain_xml(name, str(uuidlib.uuid4()), "sata"))
    dom.create()
    uid = dom.UUIDString()
    log("migration: VM started on hv-a; waiting 12 s for SeaBIOS to settle")
    time.sleep(12)
    with_rows, plain_rows = [], []
    hosts = {"hv-a": a, "hv-b": b}

    def round_trip(with_daemons: bool, pair: int) -> None:
        daemons = {}
        if with_daemons:
            for h, ep in [("hv-a", "http://monitor-a.example:9090"), ("hv-b", "http://monitor-b.example:9090")]:
                daemons[h] = Daemon(ctx.binary, hosts[h], ctx.work, ctx.images, ep, tag=f"-mig")
                ctx.daemons.append(daemons[h])
            for d in daemons.values():  # the start-up reconcile (hv-a: the VM is there) settles first
                wait_until(lambda: "reconcile" in d.text() or None, 30, "reconcile", 0.02)
            time.sleep(0.5)
        for src, dst in [("hv-a", "hv-b"), ("hv-b", "hv-a")]:
            before = len(daemons[dst].applied_lines(uid)) if with_daemons else 0
            t0, t_ret, _ = migrate(hosts[src], hosts[dst], name)
            row = {"pair": pair, "direction": f"{src}->{dst}", "migrate_returned_ms": (t_ret - t0) * 1000}
            t_res = wait_until(lambda: hosts[dst].recorder.first(uid, t0, "lifecycle", 4, 1), 10, "RESUMED/MIGRATED")
            row["resumed_on_destination_ms"] = (t_res - t0) * 1000
            if with_daemons:
                line = wait_until(lambda: (l := daemons[dst].applied_lines(uid))[before:] and l[-1], 30, "apply on destination")
                t_ins = hosts[dst].recorder.inserted_after(uid, t_res)
                row["inserted_ms"] = (t_ins - t0) * 1000 if t_ins else None
                row["done_ms"] = max(row["migrate_returned_ms"], row["inserted_ms"] or 0)
                row["daemon_total_ms"] = float(line.get("duration.total_ms", 0))
                row["daemon_insert_ms"] = float(line.get("duration.insert_ms", 0))
                row["trigger"] = line.get("run.trigger")
                with_rows.append(row)
            else:
                row["done_ms"] = row["migrate_returned_ms"]
                plain_rows.append(row)
            time.sleep(0.3)
        for d in daemons.values():
            d.stop()
            ctx.daemons.remove(d)

    for pair in range(pairs):
        order = [True, False] if pair % 2 == 0 else [False, True]
        for with_daemons in order:
            round_trip(with_daemons, pair)
        log(f"migration pair {pair + 1}/{pairs}: with {with_rows[-1]['done_ms']:.0f} ms, plain {plain_rows[-1]['done_ms']:.0f} ms")
    dom = a.conn.lookupByName(name)
    dom.destroy()
    dom.undefine()
    res = {"with_recontextd": with_rows, "plain": plain_rows}
    for key in ["migrate_returned_ms", "resumed_on_destination_ms", "done_ms"]:
        res[f"with_{key}"] = summary([r[key] for r in with_rows])
        res[f"plain_{key}"] = summary([r[key] for r in plain_rows])
    res["with_inserted_ms"] = summary([r["inserted_ms"] for r in with_rows if r["inserted_ms"]])
    res["with_daemon_total_ms"] = summary([r["daemon_total_ms"] for r in with_rows])
    res["ratio_done_median"] = res["with_done_ms"]["median"] / res["plain_done_ms"]["median"]
    res["ratio_inserted_over_plain_median"] = res["with_inserted_ms"]["median"] / res["plain_done_ms"]["median"]
    res["ratio_returned_median"] = res["with_migrate_returned_ms"]["median"] / res["plain_migrate_returned_ms"]["median"]
    res["resumed_to_inserted_ms"] = summary([r["inserted_ms"] - r["resumed_on_destination_ms"] for r in with_rows if r["inserted_ms"]])
    log(f"migration: ratio (done) {res['ratio_done_median']:.3f}, inserted/plain {res['ratio_inserted_over_plain_median']:.3f}")
    return res


# MARK: - 4. Storms (and 5. idle)


def bench_storms(ctx, vms: int, migration_vms: int, idle_seconds: float, during_idle: str | None,
                 test_node_domains: int) -> dict:
    a, b = ctx.host_a, ctx.host_b
    res = {"vms": vms}
    t_start = time.monotonic()
    doms = {}
    for i in range(vms):
        doms[f"storm-{i}"] = a.conn.defineXML(domain_xml(f"storm-{i}", str(uuidlib.uuid4()), "sata"))
    for dom in doms.values():
        dom.create()
    res["vm_start_s"] = time.monotonic() - t_start
    uuids = {n: d.UUIDString() for n, d in doms.items()}
    log(f"storms: {vms} VMs started in {res['vm_start_s']:.1f} s; letting SeaBIOS settle")
    time.sleep(max(5.0, 2 + 0.3 * vms))
    d = Daemon(ctx.binary, a, ctx.work, ctx.images, "http://monitor-a.example:9090", tag="-storm")
    ctx.daemons.append(d)
    wait_until(lambda: all(d.applied_lines(u) for u in uuids.values()) or None, 300, "first applies", 0.1)
    res["startup_converged_s"] = time.monotonic() - t_start
    time.sleep(1)

    def converge(label: str, trigger: str, action) -> dict:
        before = {u: len(d.applied_lines(u)) for u in uuids.values()}
        m0 = d.metrics()
        t0 = time.monotonic()
        action()
        done = wait_until(lambda: all(len(d.applied_lines(u)) > before[u] for u in uuids.values()) or None, 600,
                          f"{label} convergence", 0.02)
        t_all = time.monotonic()
        time.sleep(0.5)
        m1 = d.metrics()
        per = []
        for u in uuids.values():
            t_ins = a.recorder.inserted_after(u, t0)
            if t_ins:
                per.append((t_ins - t0) * 1000)
        lines = [l for u in uuids.values() for l in d.applied_lines(u)[before[u]:]]
        out = {
            "converged_s": t_all - t0, "per_domain_inserted_ms": summary(per),
            "domains_converged": sum(1 for u in uuids.values() if len(d.applied_lines(u)) > before[u]),
            "runs_applied": len(lines), "triggers": sorted({l.get("run.trigger") for l in lines}),
            "events_lost": vms - sum(1 for u in uuids.values() if len(d.applied_lines(u)) > before[u]),
            "failures_total": len(d.failures()),
            "metadata_events_counted": metric(m1, 'recontextd_events_total{type="metadata_context"}')
            - metric(m0, 'recontextd_events_total{type="metadata_context"}'),
            "daemon_vmhwm_kib": d.proc_status("VmHWM"), "daemon_vmrss_kib": d.proc_status("VmRSS"),
        }
        log(f"storm {label}: {out['domains_converged']}/{vms} converged in {out['converged_s']:.2f} s, "
            f"per-domain median {out['per_domain_inserted_ms'].get('median', 0):.0f} ms, HWM {out['daemon_vmhwm_kib']} KiB")
        return out

    def reload_action() -> None:
        d.write_config("http://monitor-a2.example:9090")
        os.kill(d.pid, signal.SIGHUP)

    res["reload"] = converge("sighup", "reload", reload_action)
    time.sleep(1)
    res["metadata"] = converge("metadata", "metadata-changed", lambda: [set_seq(dom, 7) for dom in doms.values()])

    # MARK: 5. idle footprint of this real daemon (50 managed VMs), with the test-node daemon
    idle = {}
    node = TestNodeDaemon(ctx, test_node_domains)
    ctx.daemons.append(node)
    idle["test_node"] = {"domains": test_node_domains, "first_reconcile_s": node.reconcile_s,
                         "runs_failed_insert_unsupported": node.failed_runs}
    time.sleep(2)
    cpu0, cpu_node0 = d.cpu_seconds(), node.cpu_seconds()
    t0 = time.monotonic()
    idle["real_host"] = {"managed_vms": vms, "rss_kib_start": d.proc_status("VmRSS")}
    idle["test_node"]["rss_kib_start"] = node.proc_status("VmRSS")
    if during_idle:
        log(f"idle {idle_seconds:.0f} s; meanwhile: {during_idle}")
        subprocess.run(during_idle, shell=True, check=False)
    remaining = idle_seconds - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)
    elapsed = time.monotonic() - t0
    idle["seconds"] = elapsed
    idle["real_host"].update({"cpu_ms": (d.cpu_seconds() - cpu0) * 1000, "rss_kib_end": d.proc_status("VmRSS"),
                              "vmhwm_kib": d.proc_status("VmHWM")})
    idle["test_node"].update({"cpu_ms": (node.cpu_seconds() - cpu_node0) * 1000, "rss_kib_end": node.proc_status("VmRSS"),
                              "vmhwm_kib": node.proc_status("VmHWM")})
    log(f"idle {elapsed:.0f} s: real-host daemon {idle['real_host']['cpu_ms']:.0f} ms CPU, RSS {idle['real_host']['rss_kib_end']} KiB; "
        f"test-node daemon ({test_node_domains} domains) {idle['test_node']['cpu_ms']:.0f} ms CPU, RSS {idle['test_node']['rss_kib_end']} KiB")
    node.stop()
    ctx.daemons.remove(node)
    res["idle"] = idle

    # MARK: migration storm: N of these VMs to hv-b at once, a daemon on each host
    db = Daemon(ctx.binary, b, ctx.work, ctx.images, "http://monitor-b.example:9090", tag="-storm")
    ctx.daemons.append(db)
    time.sleep(0.5)
    movers = list(doms)[:migration_vms]
    mover_uuids = [uuids[n] for n in movers]
    before = {u: len(db.applied_lines(u)) for u in mover_uuids}
    errors = []
    t0 = time.monotonic()

    def one(n: str) -> None:
        try:
            migrate(a, b, n)
        except libvirt.libvirtError as e:
            errors.append(f"{n}: {e}")

    threads = [threading.Thread(target=one, args=(n,)) for n in movers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_migrated = time.monotonic()
    wait_until(lambda: all(len(db.applied_lines(u)) > before[u] for u in mover_uuids) or None, 300, "arrivals", 0.02)
    t_all = time.monotonic()
    per, resumed = [], []
    for u in mover_uuids:
        t_res = b.recorder.first(u, t0, "lifecycle", 4, 1)
        t_ins = b.recorder.inserted_after(u, t_res or t0)
        if t_ins:
            per.append((t_ins - t0) * 1000)
        if t_res and t_ins:
            resumed.append((t_ins - t_res) * 1000)
    arrived = sum(1 for u in mover_uuids if len(db.applied_lines(u)) > before[u])
    res["migration_storm"] = {
        "vms": migration_vms, "migration_errors": errors, "all_migrations_returned_s": t_migrated - t0,
        "converged_s": t_all - t0, "per_domain_start_to_inserted_ms": summary(per),
        "per_domain_resumed_to_inserted_ms": summary(resumed), "domains_converged": arrived,
        "events_lost": migration_vms - arrived, "destination_daemon_vmhwm_kib": db.proc_status("VmHWM"),
    }
    log(f"migration storm: {arrived}/{migration_vms} converged in {t_all - t0:.2f} s (migrations returned after "
        f"{t_migrated - t0:.2f} s); errors: {len(errors)}")
    for daemon in (d, db):
        daemon.stop()
        ctx.daemons.remove(daemon)
    for n in doms:
        for host in (a, b):
            try:
                dom = host.conn.lookupByName(n)
                dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass
    return res


class TestNodeDaemon(Daemon):
    """`recontextd run` on a test-driver node file with N managed domains (no libvirtd)."""

    def __init__(self, ctx, domains: int) -> None:
        base = os.path.join(ctx.work, "test-node")
        os.makedirs(base, exist_ok=True)
        node = os.path.join(base, "node.xml")
        with open(node, "w") as f:
            f.write("<node>\n")
            for i in range(domains):
                f.write(f"""<domain type="test"><name>node-{i}</name><uuid>{uuidlib.UUID(int=0x7e57 << 96 | i)}</uuid>
<memory>131072</memory><vcpu>1</vcpu><os><type arch="x86_64">hvm</type></os>
<metadata><recontext:context xmlns:recontext="{NS}" format="nocloud"><recontext:var name="role">web-{i}</recontext:var></recontext:context></metadata>
<devices><disk type="file" device="cdrom"><target dev="sda" bus="sata"/><readonly/></disk></devices></domain>
""")
            f.write("</node>\n")
        self.config = os.path.join(base, "recontextd.yaml")
        with open(self.config, "w") as f:
            f.write(f"""libvirt:
  uri: test://{node}
images:
  directory: {base}/images
host:
  name: bench-node
  variables:
    monitoring_endpoint: http://monitor.example:9090
pipeline:
  reconcile-interval: 0
""")
        self.logpath = os.path.join(base, "recontextd.log")
        self.logfile = open(self.logpath, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([ctx.binary, "run", "--config", self.config, "--state-dir", base + "/state",
                                      "--log-target", "stderr"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.logfile)
        self.pid = self.proc.pid
        wait_until(lambda: self.text().count(" run failed ") + self.text().count(" context applied ") >= domains or None,
                   300, "test-node reconcile", 0.05)
        self.reconcile_s = time.monotonic() - t0
        self.failed_runs = self.text().count(" run failed ")


# MARK: - Main


class Context:
    pass


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--only", default="pipeline,migration,storms")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--storm-vms", type=int, default=50)
    p.add_argument("--migration-storm-vms", type=int, default=20)
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--during-idle")
    p.add_argument("--test-node-domains", type=int, default=1000)
    args = p.parse_args()
    only = set(args.only.split(","))
    ctx = Context()
    ctx.binary = args.binary
    ctx.work = tempfile.mkdtemp(prefix="rcb.", dir="/tmp")
    ctx.images = os.path.join(ctx.work, "shared/images")
    ctx.daemons = []
    ctx.host_a = ctx.host_b = None
    out = {"kvm": KVM}
    try:
        t = time.monotonic()
        ctx.host_a = Host(ctx.work, "hv-a", "127.0.10.53", "49900-49939", ["127.0.10.54=hv-b"], os.path.join(ctx.work, "shared"))
        ctx.host_b = Host(ctx.work, "hv-b", "127.0.10.54", "49940-49979", ["127.0.10.53=hv-a"], os.path.join(ctx.work, "shared"))
        os.makedirs(ctx.images, exist_ok=True)
        out["hosts_start_s"] = time.monotonic() - t
        for part, fn in [("pipeline", lambda: bench_pipeline(ctx, args.runs)),
                         ("migration", lambda: bench_migration(ctx, args.pairs)),
                         ("storms", lambda: bench_storms(ctx, args.storm_vms, args.migration_storm_vms, args.idle_seconds,
                                                          args.during_idle, args.test_node_domains))]:
            if part in only:
                t = time.monotonic()
                out[part] = fn()
                out[part + "_seconds"] = time.monotonic() - t
                with open(args.out, "w") as f:
                    json.dump(out, f, indent=1)
    finally:
        for d in list(ctx.daemons):
            try:
                d.stop()
            except Exception as e:
                log(f"stopping a daemon: {e}")
        for h in (ctx.host_b, ctx.host_a):
            if h:
                h.stop()
        shutil.rmtree(ctx.work, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
