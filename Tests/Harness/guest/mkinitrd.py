#!/usr/bin/python3
"""Write the test guest's initramfs: a gzip-compressed cpio (newc) archive. Standard library only.

Usage (build-guest.sh calls it):

    /usr/bin/python3 mkinitrd.py --kernel-modules DIR --busybox FILE --init FILE --output FILE \
        MODULE [MODULE ...]

DIR is an extracted `lib/modules/<version>` tree (no modules.dep needed: Debian's package has none,
depmod makes it at install time). Each MODULE is a module name (`sr_mod`, `virtio_scsi`, ...); its
dependencies are found in the `depends=` field of each module's `.modinfo` and added, and all of
them are written to `/lib/modules/` in the archive, dependencies first, with their load order in
`/lib/modules/load-order` (one file name a line) for `/init` to `insmod`. Modules compressed as
`.ko.xz` or `.ko.zst` are decompressed here (busybox's insmod might not handle them); a module built
into the kernel (`modules.builtin`) is skipped. Prints the load order on stdout.

The archive holds `/init`, `/bin/busybox`, `/bin/sh` (a symlink to busybox; `/init` installs the
other applets at boot), `/dev/console`, the empty directories `/init` needs, the modules, and each
`--program SOURCE=PATH` (mode 0755; PATH relative and in one of those directories, e.g.
`usr/sbin/recontext-apply`). Every
entry has mtime 0, uid 0, and the gzip header carries no time or name, so the same inputs give the
same bytes.
"""

import argparse
import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def module_name(filename):
    """`crc-t10dif.ko.xz` -> `crc_t10dif` (the kernel's module names use `_`)."""
    for suffix in MODULE_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)].replace("-", "_")
    return None


def index_modules(root):
    """{module name: path} of every module file under root/kernel (and root/updates, root/extra)."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for filename in files:
            name = module_name(filename)
            if name is not None:
                found.setdefault(name, os.path.join(dirpath, filename))
    return found


def builtin_modules(root):
    """Names of the modules built into the kernel, from modules.builtin."""
    names = set()
    try:
        with open(os.path.join(root, "modules.builtin"), encoding="utf-8") as handle:
            for line in handle:
                name = module_name(os.path.basename(line.strip()))
                if name:
                    names.add(name)
    except FileNotFoundError:
        pass
    return names


def read_module(path):
    """The uncompressed bytes of a module file."""
    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        if shutil.which("zstd") is None:
            raise SystemExit(f"mkinitrd.py: {path} is zstd-compressed and zstd is not installed (apt-get install zstd)")
        return subprocess.run(["zstd", "-dc", path], check=True, stdout=subprocess.PIPE).stdout
    return data


def module_depends(data):
    """The `depends=` list of a module's .modinfo (null-separated key=value strings)."""
    for chunk in data.split(b"\0"):
        if chunk.startswith(b"depends="):
            value = chunk[len(b"depends=") :].decode("ascii", "replace").strip()
            return [name.replace("-", "_") for name in value.split(",") if name]
    return []


def load_order(wanted, index, builtin):
    """Dependency-first order of wanted and their dependencies: [(name, bytes)]."""
    order, contents, state = [], {}, {}

    def visit(name, chain):
        if state.get(name) == "done" or name in builtin:
            return
        if state.get(name) == "active":
            raise SystemExit("mkinitrd.py: module dependency cycle: " + " -> ".join(chain + [name]))
        path = index.get(name)
        if path is None:
            raise SystemExit(f"mkinitrd.py: module {name} not found (wanted by {' -> '.join(chain) or 'the command line'})")
        state[name] = "active"
        data = read_module(path)
        for dependency in module_depends(data):
            visit(dependency, chain + [name])
        state[name] = "done"
        contents[name] = data
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), [])
    return [(name, contents[name]) for name in order]


class CpioWriter:
    """cpio "newc" (SVR4 without CRC) entries into a byte buffer."""

    def __init__(self):
        self.buffer = io.BytesIO()
        self.inode = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        encoded = name.encode() + b"\0"
        fields = [
            self.inode, mode, 0, 0, nlink, 0, len(data),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        ]  # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        self.inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.buffer.write(header + encoded)
        self.buffer.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self.buffer.write(data)
        self.buffer.write(b"\0" * (-len(data) % 4))

    def directory(self, name, mode=0o755):
        self._entry(name, 0o040000 | mode, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120000 | 0o777, target.encode())

    def char_device(self, name, major, minor, mode=0o600):
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self):
        self.inode = 0
        self._entry("TRAILER!!!", 0)
        return self.buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description="Write the recontextd test guest's initramfs.")
    parser.add_argument("--kernel-modules", required=True, help="extracted lib/modules/<version> directory")
    parser.add_argument("--busybox", required=True, help="a static busybox binary")
    parser.add_argument("--init", required=True, help="the /init script")
    parser.add_argument("--output", required=True, help="the .img to write (gzip'ed cpio newc)")
    parser.add_argument(
        "--program", action="append", default=[], metavar="SOURCE=PATH",
        help="an executable to add at PATH (relative, e.g. usr/sbin/recontext-apply); repeatable")
    parser.add_argument("modules", nargs="+", help="module names to include, with their dependencies")
    args = parser.parse_args()

    index = index_modules(args.kernel_modules)
    if not index:
        raise SystemExit(f"mkinitrd.py: no modules under {args.kernel_modules}")
    modules = load_order(args.modules, index, builtin_modules(args.kernel_modules))

    cpio = CpioWriter()
    for directory in ["bin", "dev", "proc", "sys", "tmp", "mnt", "mnt/ctx", "lib", "lib/modules", "sbin", "usr", "usr/bin", "usr/sbin"]:
        cpio.directory(directory)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    with open(args.busybox, "rb") as handle:
        cpio.file("bin/busybox", handle.read(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    with open(args.init, "rb") as handle:
        cpio.file("init", handle.read(), 0o755)
    for spec in args.program:
        source, _, path = spec.partition("=")
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise SystemExit(f"mkinitrd.py: --program wants SOURCE=relative/path, not {spec!r}")
        with open(source, "rb") as handle:
            cpio.file(path, handle.read(), 0o755)
    for name, data in modules:
        cpio.file(f"lib/modules/{name}.ko", data)
    cpio.file("lib/modules/load-order", "".join(f"{name}.ko\n" for name, _ in modules).encode())
    archive = cpio.finish()

    temporary = args.output + ".tmp"
    with open(temporary, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as compressed:
            compressed.write(archive)
    os.replace(temporary, args.output)
    print(" ".join(name for name, _ in modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
