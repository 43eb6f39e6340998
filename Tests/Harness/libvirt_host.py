#!/usr/bin/python3
"""A private, throw-away libvirt "host" for tests: its own libvirtd + virtlogd + QEMU processes.

Run as root with the system interpreter (it needs only the standard library):

    /usr/bin/python3 Tests/Harness/libvirt_host.py --state-dir /tmp/hostA \
        --hostname host-a --address 127.0.10.1 --migration-ports 49152-49215 \
        [--shared-dir /tmp/ctx-images]... [--private-dir /var/lib/recontextd/images]... \
        [--hosts-entry 127.0.10.2=host-b]... [--qemu-caps-cache DIR] [--log-level 3]
        [--remove-state-dir-on-exit] [--no-pid-namespace] [--verbose]

What it does, in order:

1. Creates the `kvm` and `libvirt-qemu` groups and the `libvirt-qemu` user if missing (libvirt's QEMU
   driver fails to start without them, even with `user = "root"`).
2. Lays out the state directory (reused if it exists: definitions and the host UUID survive a
   restart of the harness on the same directory):
       STATE/etc    -> /etc/libvirt        (copy of the machine's client config + generated
                                            libvirtd.conf, qemu.conf, virtlogd.conf; hooks/ for
                                            /etc/libvirt/hooks/qemu)
       STATE/run    -> /run/libvirt        (sockets: STATE/run/libvirt-sock)
       STATE/lib    -> /var/lib/libvirt
       STATE/cache  -> /var/cache/libvirt
       STATE/log    -> /var/log/libvirt    (libvirtd.log, virtlogd.log, qemu/DOMAIN.log)
       STATE/lock   -> /run/lock           (libvirt's character-device lock files, per host)
       STATE/hosts  -> /etc/hosts          (localhost, HOSTNAME -> ADDRESS, --hosts-entry lines)
       STATE/private/N -> each --private-dir PATH
       STATE/libvirtd.pid, STATE/virtlogd.pid, STATE/libvirtd.out, STATE/virtlogd.out
   Mount points that do not exist yet (e.g. /run/libvirt) are created as empty directories on the
   real file system: a bind mount needs one. Nothing else outside STATE is written, except the
   --shared-dir directories, which are created and stay ordinary directories seen by every host.
3. Enters a new PID namespace (the supervisor forks once; the child is PID 1 there, reaps every
   orphan at once, and when it dies for any reason, even SIGKILL, the kernel kills every process
   left in the namespace: no QEMU outlives its host), then a new mount + UTS namespace (mount
   propagation private), mounts a fresh /proc, sets the hostname, bind-mounts the directories above.
   With --no-pid-namespace it stays in the caller's PID namespace and uses PR_SET_CHILD_SUBREAPER
   instead, so daemonized QEMU processes are still reaped at once by the supervisor (this machine's
   PID 1 reaps about 1 s late), but a supervisor killed with SIGKILL leaves QEMU behind.
4. Starts virtlogd and then libvirtd in the foreground (not --daemon), each in its own session, with
   explicit --pid-file paths in STATE, waits until `virsh -c qemu:///system version` answers inside
   the namespaces, and prints ONE line of JSON on stdout:
       {"ready": true, "uri": "qemu:///system?socket=STATE/run/libvirt-sock", "pid": ...,
        "libvirtd_pid": ..., "virtlogd_pid": ..., "state_dir": ..., "hostname": ..., "address": ...,
        "host_uuid": ..., "migration_ports": [min, max], "startup_seconds": ...}
   All PIDs are as seen from the caller's PID namespace. "pid" is the process the caller started.
   On failure: {"ready": false, "error": "...", "log_tail": "..."} and a non-zero exit status.
5. Serves until stdin reaches EOF (the test closed the pipe, or died) or SIGTERM/SIGINT arrives.
   Meanwhile it accepts one-line commands on stdin, each answered by one JSON line on stdout:
       reload            SIGHUP to libvirtd (it re-reads hooks)     -> {"ok": true}
       restart-libvirtd  stop libvirtd, start it again, wait ready  -> {"ok": true, "libvirtd_pid": N}
       ping                                                         -> {"ok": true, ...pids}
6. Cleans up: SIGTERM to each QEMU named by STATE/run/qemu/*.pid, then to libvirtd, then to
   virtlogd (SIGKILL after a timeout), reaps them and exits 0. It signals only processes it started
   or that were reparented to it, by PID; never by name. The mounts vanish with the namespace.
   STATE itself is left for the caller to inspect and remove, unless --remove-state-dir-on-exit
   (then it goes on every exit, a failed start included: the JSON line carries the log tail).

Using the host:
  * From anywhere (the caller's namespaces or another host's): the "uri" above, e.g.
        virsh -c 'qemu:///system?socket=/tmp/hostA/run/libvirt-sock' list --all
    That path is the same inode as /run/libvirt/libvirt-sock inside the host, so libvirtd A can
    reach host B with it too (e.g. `migrate --p2p`). A unix socket path must stay under 108 bytes,
    so keep STATE short.
  * Running a program "on" the host, where plain qemu:///system, /etc/libvirt, /run/libvirt... are
    that host's:
        nsenter --target LIBVIRTD_PID --mount --uts --pid -- virsh -c qemu:///system list
    Include --pid when a PID namespace is used (the default): the host's mount namespace has a /proc
    for its own PID namespace, and a process outside it would see a /proc without itself
    (/proc/self dangles). With --no-pid-namespace, `--mount --uts` alone is right.
  * Migration between two hosts: start two supervisors with different --hostname, --address
    (127.0.10.x; 127.0.0.1 and localhost are refused by libvirtd) and disjoint --migration-ports,
    the same --shared-dir for images, then
        virsh -c URI_A migrate --live --persistent --undefinesource DOM URI_B
    (client-managed), or with --p2p (libvirtd A connects to URI_B itself).

Traps: run as root; only one harness per STATE directory; STATE must not be under a path that is
bind-mounted here; the QEMU PIDs in STATE/run/qemu/*.pid are PIDs inside the host's PID namespace.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import glob
import ipaddress
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid

# MARK: - Constants

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

LIBVIRTD = "/usr/sbin/libvirtd"
VIRTLOGD = "/usr/sbin/virtlogd"
VIRSH = "/usr/bin/virsh"
ACCOUNTS_LOCK = "/run/lock/recontextd-libvirt-harness.lock"
DAEMON_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}
UNIX_PATH_MAX = 108

# Private directory (relative to STATE) -> where it is bind-mounted inside the host.
BIND_DIRS = [
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
    # libvirt's lock files for character devices (virDomainOpenChannel): named after the socket path,
    # which is the same on two hosts whose domains have the same id; real hosts never share them.
    ("lock", "/run/lock"),
]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class HarnessError(Exception):
    """A start-up failure reported as {"ready": false}."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


# MARK: - Small system helpers (each raises OSError with errno on failure)

def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """The corresponding C function is `unshare` (os.unshare needs Python 3.12)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """The corresponding C function is `mount`."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, None), f"mount {source} on {target}")


def prctl(option: int, arg: int) -> None:
    """The corresponding C function is `prctl`."""
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


_LOG_NAME = "libvirt_host"  # becomes the hostname once known: PIDs say little inside a namespace


def log(msg: str) -> None:
    sys.stderr.write(f"libvirt_host[{_LOG_NAME}]: {msg}\n")
    sys.stderr.flush()


def tail(path: str, max_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def write_file(path: str, text: str, mode: int = 0o644) -> None:
    """Writes a complete file under a temporary name, then renames it into place."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# MARK: - Arguments

class _ArgumentParser(argparse.ArgumentParser):
    """Reports argument errors as a {"ready": false} line too, so the caller sees the reason."""

    def error(self, message: str):
        print(json.dumps({"ready": False, "error": f"bad arguments: {message}"}), flush=True)
        self.print_usage(sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _ArgumentParser(description="Private libvirtd + virtlogd host for tests (see docstring).")
    p.add_argument("--state-dir", required=True, help="absolute directory for all state (created)")
    p.add_argument("--hostname", required=True, help="hostname inside the host's UTS namespace")
    p.add_argument("--address", required=True, help="migration address, e.g. 127.0.10.1")
    p.add_argument("--migration-ports", default="49152-49215", help="MIN-MAX, disjoint between hosts")
    p.add_argument("--shared-dir", action="append", default=[], help="directory created, visible to all hosts")
    p.add_argument("--private-dir", action="append", default=[], help="PATH given a per-host private directory")
    p.add_argument("--hosts-entry", action="append", default=[], help="ADDRESS=NAME line for the private /etc/hosts")
    p.add_argument("--log-level", type=int, default=3, choices=[1, 2, 3, 4], help="libvirtd/virtlogd log level")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for libvirtd to answer")
    p.add_argument("--qemu-caps-cache", help="directory kept between runs to seed libvirt's QEMU capabilities "
                   "cache (saves about 1 s of probing per start; libvirt re-probes stale entries itself)")
    p.add_argument("--remove-state-dir-on-exit", action="store_true",
                   help="delete STATE when the harness exits, also after a failed start")
    p.add_argument("--verbose", action="store_true", help="log timings to stderr")
    p.add_argument("--no-pid-namespace", action="store_true", help="stay in the caller's PID namespace")
    a = p.parse_args(argv)

    problems = []
    a.state_dir = os.path.normpath(a.state_dir)
    if not os.path.isabs(a.state_dir):
        problems.append("--state-dir must be absolute")
    if _under_bind_target(a.state_dir):
        problems.append("--state-dir must not be under a directory that the harness bind-mounts")
    sock = os.path.join(a.state_dir, "run", "libvirt-admin-sock")
    if len(sock.encode()) >= UNIX_PATH_MAX:
        problems.append(f"--state-dir too long: {sock!r} exceeds the {UNIX_PATH_MAX - 1}-byte unix socket path limit")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62})", a.hostname) or a.hostname.startswith("localhost"):
        problems.append(f"--hostname {a.hostname!r}: need a plain host name other than localhost")
    try:
        addr = ipaddress.ip_address(a.address)
        if str(addr) in ("127.0.0.1", "::1"):
            problems.append("--address 127.0.0.1 and ::1 are refused by libvirtd; use e.g. 127.0.10.1")
    except ValueError:
        problems.append(f"--address {a.address!r} is not an IP address")
    m = re.fullmatch(r"(\d+)-(\d+)", a.migration_ports)
    if not m or not (1024 <= int(m.group(1)) <= int(m.group(2)) <= 65535):
        problems.append(f"--migration-ports {a.migration_ports!r}: need MIN-MAX within 1024-65535")
    else:
        a.port_min, a.port_max = int(m.group(1)), int(m.group(2))
    for d in a.shared_dir + a.private_dir + ([a.qemu_caps_cache] if a.qemu_caps_cache else []):
        if not os.path.isabs(d):
            problems.append(f"{d!r}: directories must be absolute")
    for d in a.shared_dir + ([a.qemu_caps_cache] if a.qemu_caps_cache else []):
        if _under_bind_target(os.path.normpath(d)):
            problems.append(f"{d!r} is under a per-host directory, so it could not be shared")
    a.extra_hosts = []
    for entry in a.hosts_entry:
        addr_s, _, name = entry.partition("=")
        if not name:
            problems.append(f"--hosts-entry {entry!r}: need ADDRESS=NAME")
        a.extra_hosts.append((addr_s, name))
    if problems:
        p.error("; ".join(problems))
    return a


def _under_bind_target(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for _, t in BIND_DIRS + [("", "/etc/hosts")])


# MARK: - Accounts and files (caller's namespaces)

def ensure_accounts() -> None:
    """Creates the `kvm` and `libvirt-qemu` groups and the `libvirt-qemu` user if missing.

    Serialised with a lock file so two harnesses starting together do not race in useradd.
    """
    import grp
    import pwd

    def have_group(name: str) -> bool:
        try:
            grp.getgrnam(name)
            return True
        except KeyError:
            return False

    def have_user(name: str) -> bool:
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    if have_group("kvm") and have_group("libvirt-qemu") and have_user("libvirt-qemu"):
        return
    os.makedirs(os.path.dirname(ACCOUNTS_LOCK), exist_ok=True)
    with open(ACCOUNTS_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for group in ("kvm", "libvirt-qemu"):
            if not have_group(group):
                subprocess.run(["groupadd", "--system", group], check=True)
        if not have_user("libvirt-qemu"):
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/libvirt",
                 "--shell", "/usr/sbin/nologin", "--gid", "libvirt-qemu", "--groups", "kvm", "libvirt-qemu"],
                check=True,
            )


def prepare_state(a: argparse.Namespace) -> None:
    """Creates STATE's layout and writes the configuration files."""
    st = a.state_dir
    fresh_etc = not os.path.isdir(os.path.join(st, "etc"))
    os.makedirs(st, mode=0o755, exist_ok=True)
    if fresh_etc:
        # The machine's client-side files (libvirt.conf, libvirt-admin.conf) keep working inside.
        if os.path.isdir("/etc/libvirt"):
            shutil.copytree("/etc/libvirt", os.path.join(st, "etc"), symlinks=True)
    for sub, _ in BIND_DIRS:
        os.makedirs(os.path.join(st, sub), mode=0o755, exist_ok=True)
    for sub in ("etc/hooks", "etc/qemu", "log/qemu"):
        os.makedirs(os.path.join(st, sub), mode=0o755, exist_ok=True)

    uuid_file = os.path.join(st, "host-uuid")
    try:
        with open(uuid_file) as f:
            a.host_uuid = str(uuid.UUID(f.read().strip()))
    except (OSError, ValueError):
        a.host_uuid = str(uuid.uuid4())
        write_file(uuid_file, a.host_uuid + "\n")

    lvl = a.log_level
    write_file(os.path.join(st, "etc", "libvirtd.conf"), f"""\
# Generated by Tests/Harness/libvirt_host.py for host {a.hostname}.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "{a.host_uuid}"
log_level = {lvl}
log_outputs = "{lvl}:file:/var/log/libvirt/libvirtd.log"
""")
    write_file(os.path.join(st, "etc", "virtlogd.conf"), f"""\
# Generated by Tests/Harness/libvirt_host.py for host {a.hostname}.
log_level = {lvl}
log_outputs = "{lvl}:file:/var/log/libvirt/virtlogd.log"
""")
    write_file(os.path.join(st, "etc", "qemu.conf"), f"""\
# Generated by Tests/Harness/libvirt_host.py for host {a.hostname}.
user = "root"
group = "root"
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "logd"
migration_address = "{a.address}"
migration_host = "{a.address}"
migration_port_min = {a.port_min}
migration_port_max = {a.port_max}
""")
    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{a.address}\t{a.hostname}"]
    hosts += [f"{addr}\t{name}" for addr, name in a.extra_hosts]
    write_file(os.path.join(st, "hosts"), "\n".join(hosts) + "\n")

    if a.qemu_caps_cache:
        seed_caps_cache(a.qemu_caps_cache, os.path.join(st, "cache", "qemu", "capabilities"))

    a.private_map = []
    for i, path in enumerate(a.private_dir):
        src = os.path.join(st, "private", str(i))
        os.makedirs(src, mode=0o755, exist_ok=True)
        a.private_map.append((src, os.path.normpath(path)))
    for path in a.shared_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    # Mount points must exist; on this kind of machine /run/libvirt and /var/lib/libvirt do not.
    for _, target in BIND_DIRS:
        os.makedirs(target, mode=0o755, exist_ok=True)


CAPS_NAME = re.compile(r"[0-9a-f]{64}\.xml")


def seed_caps_cache(shared: str, private: str) -> None:
    """Copies cached QEMU capabilities (one XML per emulator binary) that STATE lacks."""
    os.makedirs(private, mode=0o755, exist_ok=True)
    try:
        names = os.listdir(shared)
    except FileNotFoundError:
        return
    for name in names:
        dst = os.path.join(private, name)
        if CAPS_NAME.fullmatch(name) and not os.path.exists(dst):
            shutil.copyfile(os.path.join(shared, name), dst + ".tmp")
            os.chmod(dst + ".tmp", 0o600)
            os.replace(dst + ".tmp", dst)


def save_caps_cache(private: str, shared: str) -> None:
    """Publishes libvirt's capabilities files to the shared cache (whole files, atomic renames)."""
    os.makedirs(shared, mode=0o755, exist_ok=True)
    for name in os.listdir(private):
        src, dst = os.path.join(private, name), os.path.join(shared, name)
        if not CAPS_NAME.fullmatch(name):
            continue
        with open(src, "rb") as f:
            data = f.read()
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except OSError:
            pass
        tmp = f"{dst}.tmp-{uuid.uuid4().hex[:12]}"  # not the PID: it is 1 in every host
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)


# MARK: - Process management (inside the host's namespaces)

class Daemon:
    """One foreground daemon started by the supervisor, tracked by PID."""

    def __init__(self, name: str, argv: list[str], out_path: str, pid_file: str):
        self.name, self.argv, self.out_path, self.pid_file = name, argv, out_path, pid_file
        self.pid: int | None = None
        self.status: int | None = None  # wait status once reaped

    def start(self, pdeathsig: bool) -> None:
        # A stale pid file is fine: the daemon locks it (fcntl) and rewrites it.
        out = os.open(self.out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open("/dev/null", os.O_RDONLY)
        pid = os.fork()
        if pid == 0:  # child: only async-signal-safe-ish steps, then exec
            try:
                os.setsid()  # terminal signals (^C) go to the supervisor only
                if pdeathsig:
                    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
                for sig in (signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.dup2(devnull, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.closerange(3, 65536)
                os.execve(self.argv[0], self.argv, DAEMON_ENV)
            except BaseException as e:  # noqa: BLE001
                os.write(2, f"exec {self.argv[0]} failed: {e}\n".encode())
            os._exit(127)
        os.close(out)
        os.close(devnull)
        self.pid, self.status = pid, None

    @property
    def alive(self) -> bool:
        return self.pid is not None and self.status is None

    def describe_exit(self) -> str:
        s = self.status
        if s is None:
            return "running"
        if os.WIFEXITED(s):
            return f"exited with status {os.WEXITSTATUS(s)}"
        name = signal.Signals(os.WTERMSIG(s)).name if os.WTERMSIG(s) in signal.valid_signals() else os.WTERMSIG(s)
        if os.WCOREDUMP(s):
            return f"crashed with {name} (core dumped)"
        return f"killed by signal {os.WTERMSIG(s)} ({name})"


class Supervisor:
    """The part that runs inside the host's namespaces."""

    def __init__(self, a: argparse.Namespace, out_fd: int, in_pid_ns: bool):
        self.a = a
        self.out_fd = out_fd
        self.in_pid_ns = in_pid_ns
        st = a.state_dir
        self.virtlogd = Daemon("virtlogd", [VIRTLOGD, "--pid-file", f"{st}/virtlogd.pid",
                                            "--config", "/etc/libvirt/virtlogd.conf"],
                               f"{st}/virtlogd.out", f"{st}/virtlogd.pid")
        self.libvirtd = Daemon("libvirtd", [LIBVIRTD, "--pid-file", f"{st}/libvirtd.pid",
                                            "--config", "/etc/libvirt/libvirtd.conf"],
                               f"{st}/libvirtd.out", f"{st}/libvirtd.pid")
        self.daemons = [self.virtlogd, self.libvirtd]
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pending: set[int] = set()
        self.exited: dict[int, int] = {}  # wait status of every child reaped, by PID
        self.stdin_buf = b""
        self.stdin_open = True

    # -- signals and reaping

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, lambda s, _f: self.pending.add(s))

    def reap(self) -> None:
        """Reaps every exited child: daemons, and QEMU processes reparented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = status
            for d in self.daemons:
                if d.pid == pid and d.status is None:
                    d.status = status

    def drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds: float) -> None:
        """Sleeps, waking early on a signal; reaps children either way."""
        select.select([self.wake_r], [], [], seconds)
        self.drain_wakeups()
        self.reap()

    def wait_until(self, done, deadline: float, interval: float | None = None) -> bool:
        """Waits until `done()` holds or the monotonic `deadline` passes; returns `done()`.

        The harness's one wait. With `interval` None the awaited thing is a child's exit: SIGCHLD
        wakes sleep(), so it waits for the event itself. Otherwise nothing announces it (a file,
        a process that is not our child) and it looks every `interval` seconds, still waking at
        once on a signal.
        """
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return done()
            self.sleep(left if interval is None else min(interval, left))
        return True

    def emit(self, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            n = os.write(self.out_fd, data)
            data = data[n:]

    # -- namespaces

    def enter_namespaces(self) -> None:
        a = self.a
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        unshare(CLONE_NEWNS | CLONE_NEWUTS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the real host
        if self.in_pid_ns:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        with open("/proc/sys/kernel/hostname", "w") as f:  # sethostname(2) in our UTS namespace
            f.write(a.hostname)
        for sub, target in BIND_DIRS:
            mount(os.path.join(a.state_dir, sub), target, None, MS_BIND | MS_REC)
        mount(os.path.join(a.state_dir, "hosts"), "/etc/hosts", None, MS_BIND)
        for src, target in a.private_map:
            # Created here, after the binds, so that e.g. /var/lib/libvirt/images lands in STATE/lib.
            os.makedirs(target, mode=0o755, exist_ok=True)
            mount(src, target, None, MS_BIND | MS_REC)

    # -- daemons

    def wait_file(self, path: str, daemon: Daemon, deadline: float) -> None:
        def created() -> bool:
            if os.path.exists(path):
                return True
            if not daemon.alive:
                raise HarnessError(f"{daemon.name} {daemon.describe_exit()} during start-up", self.log_tail())
            if self.pending & {signal.SIGTERM, signal.SIGINT}:
                raise HarnessError("interrupted during start-up")
            return False

        # A daemon creates its socket unannounced: look every 10 ms (its death wakes us at once).
        if not self.wait_until(created, deadline, interval=0.01):
            raise HarnessError(f"{daemon.name} did not create {path} in time", self.log_tail())

    def run_command(self, argv: list[str], timeout: float) -> tuple[int | None, str]:
        """Runs a short command to completion while still reaping orphans.

        subprocess.run would block the reaper: libvirtd's QEMU capability probe kills its QEMU and
        then polls kill(pid, 0) until the zombie is reaped, by us; a blocked reaper deadlocks it.
        Returns (exit status or None on timeout, combined output).
        """
        cmd = Daemon(os.path.basename(argv[0]), argv, f"{self.a.state_dir}/command.out", "")
        try:
            os.unlink(cmd.out_path)
        except FileNotFoundError:
            pass
        cmd.start(pdeathsig=True)
        self.daemons.append(cmd)
        try:
            self.wait_until(lambda: not cmd.alive, time.monotonic() + timeout)
            if cmd.alive:
                self.stop_pid(cmd.pid, cmd.name, 1.0, lambda: not cmd.alive)
                return None, tail(cmd.out_path)
            code = os.WEXITSTATUS(cmd.status) if os.WIFEXITED(cmd.status) else 128 + os.WTERMSIG(cmd.status)
            return code, tail(cmd.out_path)
        finally:
            self.daemons.remove(cmd)

    def wait_libvirtd_ready(self, deadline: float) -> None:
        self.wait_file("/run/libvirt/libvirt-sock", self.libvirtd, deadline)
        detail = ""

        def answers() -> bool:
            nonlocal detail
            # Connecting blocks until libvirtd has initialised its drivers; `version` also needs
            # the QEMU driver (its capabilities probe), so this is "ready for domains".
            left = max(1.0, deadline - time.monotonic())
            code, out = self.run_command([VIRSH, "-c", "qemu:///system", "version"], left)
            if code == 0:
                return True
            detail = out.strip() if code is not None else "virsh version timed out"
            if not self.libvirtd.alive:
                raise HarnessError(f"libvirtd {self.libvirtd.describe_exit()} during start-up", self.log_tail())
            return False

        # Asked again every 50 ms: libvirtd says nothing when it is ready.
        if not self.wait_until(answers, deadline, interval=0.05):
            raise HarnessError(f"libvirtd did not answer: {detail}", self.log_tail())

    def start_libvirtd(self) -> None:
        self.libvirtd.start(pdeathsig=not self.in_pid_ns)
        self.wait_libvirtd_ready(time.monotonic() + self.a.timeout)

    def start(self) -> None:
        deadline = time.monotonic() + self.a.timeout
        self.virtlogd.start(pdeathsig=not self.in_pid_ns)
        self.wait_file("/run/libvirt/virtlogd-sock", self.virtlogd, deadline)
        self.start_libvirtd()

    def log_tail(self) -> str:
        parts = []
        for path in (f"{self.a.state_dir}/virtlogd.out", f"{self.a.state_dir}/libvirtd.out",
                     f"{self.a.state_dir}/log/libvirtd.log"):
            t = tail(path, 2000).strip()
            if t:
                parts.append(f"== {path}\n{t}")
        return "\n".join(parts)

    def stop_pid(self, pid: int, name: str, timeout: float, gone) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; `gone()` says whether it has exited."""
        self.stop_pids({pid: name}, timeout, lambda _p: gone())

    def stop_pids(self, names: dict[int, str], timeout: float, gone) -> None:
        """Stops several processes at once: SIGTERM to all, wait, then SIGKILL the rest."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            left = [p for p in names if not gone(p)]
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            # Our children's (and reparented QEMUs') exits wake the wait; the 50 ms looks are for
            # a process that is not our child.
            self.wait_until(lambda: all(gone(p) for p in left), time.monotonic() + wait, interval=0.05)
        for pid, name in names.items():
            if not gone(pid):
                log(f"{name} (pid {pid}) survived SIGKILL")

    def stop_daemon(self, d: Daemon, timeout: float = 10.0) -> None:
        if d.alive:
            self.stop_pid(d.pid, d.name, timeout, lambda: not d.alive)

    def qemu_pids(self) -> list[int]:
        """PIDs of QEMU processes of this host, from libvirt's pid files, checked against /proc."""
        pids = []
        for path in _domain_pid_files():
            try:
                with open(path) as f:
                    pid = int(f.read().strip())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0", 1)[0]
            except (OSError, ValueError):
                continue
            if b"qemu" in os.path.basename(argv0):
                pids.append(pid)
        return pids

    def cleanup(self) -> None:
        t0 = time.monotonic()
        qemus = self.qemu_pids()
        if qemus:
            self.stop_pids({p: f"qemu {p}" for p in qemus}, 5.0, lambda p: _is_zombie_reaped(p, self))
            # Let libvirtd notice the monitor EOFs and clear its status files, so that a later
            # harness on the same STATE does not find stale running domains.
            self.wait_until(
                lambda: not self.libvirtd.alive or not _domain_pid_files(), time.monotonic() + 3.0, interval=0.01)
        t1 = time.monotonic()
        self.stop_daemon(self.libvirtd)
        t2 = time.monotonic()
        self.stop_daemon(self.virtlogd)
        if not self.in_pid_ns:
            # Anything else reparented to us (we are a subreaper): our own descendants only.
            for pid in _own_children():
                self.stop_pid(pid, f"child {pid}", 2.0, lambda p=pid: _is_zombie_reaped(p, self))
        self.reap()
        if self.a.verbose:
            log(f"cleanup: {len(qemus)} qemu {t1 - t0:.3f}s, libvirtd {t2 - t1:.3f}s, "
                f"virtlogd+rest {time.monotonic() - t2:.3f}s")

    # -- serving

    def handle_command(self, line: str) -> None:
        cmd = line.strip()
        if not cmd:
            return
        try:
            if cmd == "ping":
                self.emit({"ok": True, "libvirtd_pid": self.libvirtd.pid if self.libvirtd.alive else None,
                           "virtlogd_pid": self.virtlogd.pid if self.virtlogd.alive else None})
            elif cmd == "reload":
                if not self.libvirtd.alive:
                    raise HarnessError("libvirtd is not running")
                os.kill(self.libvirtd.pid, signal.SIGHUP)
                self.emit({"ok": True})
            elif cmd == "restart-libvirtd":
                self.stop_daemon(self.libvirtd)
                self.start_libvirtd()
                self.emit({"ok": True, "libvirtd_pid": self.libvirtd.pid})
            else:
                self.emit({"ok": False, "error": f"unknown command {cmd!r}"})
        except HarnessError as e:
            self.emit({"ok": False, "error": str(e), "log_tail": e.log_tail})

    def serve(self) -> None:
        reported = set()
        while True:
            if self.pending & {signal.SIGTERM, signal.SIGINT}:
                return
            if signal.SIGHUP in self.pending and self.libvirtd.alive:
                os.kill(self.libvirtd.pid, signal.SIGHUP)
            self.pending.clear()
            for d in self.daemons:
                if d.pid is not None and not d.alive and d.pid not in reported:
                    reported.add(d.pid)
                    log(f"{d.name} (pid {d.pid}) {d.describe_exit()} unexpectedly")
            rfds = [self.wake_r] + ([0] if self.stdin_open else [])
            ready, _, _ = select.select(rfds, [], [], 1.0)  # SIGCHLD wakes it earlier
            self.drain_wakeups()
            self.reap()
            if 0 in ready:
                try:
                    chunk = os.read(0, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    return  # EOF: the test closed the pipe or died
                self.stdin_buf += chunk
                while b"\n" in self.stdin_buf:
                    line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
                    self.handle_command(line.decode("utf-8", "replace"))

    def run(self) -> int:
        self.install_signals()
        started = time.monotonic()
        try:
            self.enter_namespaces()
            self.start()
        except (HarnessError, OSError, subprocess.SubprocessError) as e:
            tail_text = e.log_tail if isinstance(e, HarnessError) else self.log_tail()
            self._emit_safely({"ready": False, "error": str(e), "log_tail": tail_text})
            self.cleanup()
            return 1
        a = self.a
        ok = self._emit_safely({
            "ready": True,
            "uri": f"qemu:///system?socket={a.state_dir}/run/libvirt-sock",
            "pid": os.getpid(),  # the relay outside a PID namespace replaces it with its own
            "supervisor_pid": os.getpid(),
            "libvirtd_pid": self.libvirtd.pid,
            "virtlogd_pid": self.virtlogd.pid,
            "state_dir": a.state_dir,
            "hostname": a.hostname,
            "address": a.address,
            "host_uuid": a.host_uuid,
            "migration_ports": [a.port_min, a.port_max],
            "shared_dirs": a.shared_dir,
            "private_dirs": [t for _, t in a.private_map],
            "pid_namespace": self.in_pid_ns,
            "startup_seconds": round(time.monotonic() - started, 3),
        })
        if ok:
            if a.qemu_caps_cache:
                try:
                    save_caps_cache("/var/cache/libvirt/qemu/capabilities", a.qemu_caps_cache)
                except OSError as e:
                    log(f"could not save the QEMU capabilities cache: {e}")
            self.serve()
        self.cleanup()
        return 0

    def _emit_safely(self, obj: dict) -> bool:
        try:
            self.emit(obj)
            return True
        except OSError:  # nobody listens any more: clean up and go
            return False


def _domain_pid_files() -> list[str]:
    """libvirt's per-domain QEMU pid files (driver.pid there is libvirtd's own lock file)."""
    return [p for p in glob.glob("/run/libvirt/qemu/*.pid") if os.path.basename(p) != "driver.pid"]


def _is_zombie_reaped(pid: int, sup: Supervisor) -> bool:
    sup.reap()
    return not os.path.exists(f"/proc/{pid}")


def _own_children() -> list[int]:
    me = os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            kids.append(int(entry))
    return kids


# MARK: - PID translation (caller's namespace)

def _ns_pid_map(child_pid: int) -> dict[int, int]:
    """Maps PIDs inside the PID namespace whose init is `child_pid` to PIDs in ours."""
    try:
        target_ns = os.readlink(f"/proc/{child_pid}/ns/pid")
    except OSError:
        return {}
    mapping = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != target_ns:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        mapping[int(ids[-1])] = int(ids[0])
                        break
        except (OSError, ValueError):
            continue
    return mapping


def relay(child_pid: int, read_fd: int) -> None:
    """Copies JSON lines from the namespace's init to stdout, turning its PIDs into ours."""
    with os.fdopen(read_fd, "rb", buffering=0) as r:
        buf = b""
        while True:
            try:
                chunk = r.read(4096)
            except InterruptedError:
                continue
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    obj = json.loads(line)
                    pid_keys = [k for k, v in obj.items() if k.endswith("_pid") and isinstance(v, int)]
                    if pid_keys:
                        m = _ns_pid_map(child_pid)
                        for k in pid_keys:
                            obj[k] = m.get(obj[k], obj[k])
                    obj["pid"] = os.getpid()
                    if obj.get("supervisor_pid") is not None:
                        obj["supervisor_pid"] = child_pid
                    line = json.dumps(obj).encode()
                except (ValueError, AttributeError):
                    pass
                try:
                    sys.stdout.buffer.write(line + b"\n")
                    sys.stdout.buffer.flush()
                except OSError:
                    pass  # the reader is gone; the child sees stdin EOF and cleans up


# MARK: - Main

def main(argv: list[str]) -> int:
    global _LOG_NAME
    # The signal mask survives exec. Foundation's Process called on a libdispatch worker thread
    # (any async Swift test) starts us with nearly every signal blocked (SigBlk fffffffe3bfbea27
    # seen here), SIGCHLD and SIGTERM included. With SIGCHLD blocked nothing is reaped promptly,
    # and libvirt waits ~5 s for every QEMU it kills, since a zombie still answers kill(pid, 0).
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    a = parse_args(argv)
    _LOG_NAME = a.hostname
    enable_core_dumps()
    if os.geteuid() != 0:
        print(json.dumps({"ready": False, "error": "libvirt_host.py must run as root"}), flush=True)
        return 2
    for binary in (LIBVIRTD, VIRTLOGD, VIRSH):
        if not os.access(binary, os.X_OK):
            print(json.dumps({"ready": False, "error": f"{binary} not found"}), flush=True)
            return 2
    try:
        os.makedirs(a.state_dir, mode=0o755, exist_ok=True)
        # Held (close-on-exec) for the supervisor's lifetime: one harness per STATE directory.
        lock_fd = os.open(os.path.join(a.state_dir, "harness.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(json.dumps({"ready": False, "error": f"another harness is using {a.state_dir}"}), flush=True)
            return 1
    except OSError as e:
        print(json.dumps({"ready": False, "error": f"locking {a.state_dir}: {e}"}), flush=True)
        return 1
    try:
        return _run_locked(a)
    finally:
        if a.remove_state_dir_on_exit:
            shutil.rmtree(a.state_dir, ignore_errors=True)


def enable_core_dumps() -> None:
    """Lets libvirtd, virtlogd (and QEMU) dump core: RLIMIT_CORE unlimited, inherited by every child.

    Where the cores go is the kernel's core_pattern, which the test process sets (see
    Tests/TestSupport/CoreDumps.swift); a crash is reported as "libvirtd ... crashed with SIGSEGV".
    """
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        except (OSError, ValueError):
            pass


def _run_locked(a: argparse.Namespace) -> int:
    """Everything after taking STATE's lock: prepare, then supervise (directly or as PID 1)."""
    try:
        ensure_accounts()
        prepare_state(a)
    except (OSError, subprocess.SubprocessError) as e:
        print(json.dumps({"ready": False, "error": f"preparing {a.state_dir}: {e}"}), flush=True)
        return 1

    if a.no_pid_namespace:
        return Supervisor(a, out_fd=sys.stdout.fileno(), in_pid_ns=False).run()

    # The first child after unshare(CLONE_NEWPID) is PID 1 of the new namespace.
    try:
        unshare(CLONE_NEWPID)
    except OSError as e:
        print(json.dumps({"ready": False, "error": f"cannot create a PID namespace: {e}"}), flush=True)
        return 1
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # supervisor gone => namespace gone
            code = Supervisor(a, out_fd=w, in_pid_ns=True).run()
        except BaseException as e:  # noqa: BLE001
            log(f"supervisor failed: {e!r}")
        finally:
            os._exit(code)
    os.close(w)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: _forward(child, s))
    relay(child, r)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _forward(child: int, sig: int) -> None:
    try:
        os.kill(child, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
