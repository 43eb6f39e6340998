#!/usr/bin/python3
"""Read a context CD-ROM image back, independently of recontextd, and print it as JSON.

Usage: /usr/bin/python3 read_context.py IMAGE.iso

Uses pycdlib (Debian: python3-pycdlib, seen only by /usr/bin/python3). Prints one JSON object:

    {
      "volume_id": "cidata",
      "files": {
        "meta-data": {"mode": "0644", "size": 123, "sha256": "...", "base64": "...", "text": "..."},
        ...
      }
    }

Paths are the Rock Ridge names (the names recontextd wrote), relative, "/"-separated; directories
are not listed. "mode" is the Rock Ridge permission bits in octal. "text" is present when the
content is valid UTF-8. Exit status: 0 on success, 2 on usage errors, 1 when the image cannot be
read or has no Rock Ridge extensions.
"""

import base64
import hashlib
import json
import stat
import sys

try:
    import pycdlib
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("read_context.py: pycdlib is missing (apt-get install python3-pycdlib; use /usr/bin/python3)\n")
    sys.exit(1)


def read_image(path):
    """Returns (volume id, {path: (mode, bytes)}) of an ISO 9660 image with Rock Ridge."""
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        if not iso.has_rock_ridge():
            raise ValueError("image has no Rock Ridge extensions")
        volume_id = iso.pvd.volume_identifier.decode("ascii", "replace").rstrip(" ")
        files = {}
        for dirname, _dirlist, filelist in iso.walk(rr_path="/"):
            for name in filelist:
                rr_path = (dirname.rstrip("/") + "/" + name) if dirname != "/" else "/" + name
                record = iso.get_record(rr_path=rr_path)
                mode = stat.S_IMODE(record.rock_ridge.get_file_mode()) if record.rock_ridge else 0o444
                buffer = _Collector()
                iso.get_file_from_iso_fp(buffer, rr_path=rr_path)
                files[rr_path.lstrip("/")] = (mode, bytes(buffer.data))
        return volume_id, files
    finally:
        iso.close()


class _Collector:
    """A minimal writable file object for pycdlib."""

    def __init__(self):
        self.data = bytearray()

    def write(self, chunk):
        self.data += chunk
        return len(chunk)


def describe(volume_id, files):
    out = {"volume_id": volume_id, "files": {}}
    for path in sorted(files):
        mode, data = files[path]
        entry = {
            "mode": "%04o" % mode,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "base64": base64.b64encode(data).decode("ascii"),
        }
        try:
            entry["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        out["files"][path] = entry
    return out


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 2
    try:
        volume_id, files = read_image(argv[1])
    except Exception as error:  # pycdlib raises its own exception types
        sys.stderr.write("read_context.py: %s: %s\n" % (argv[1], error))
        return 1
    json.dump(describe(volume_id, files), sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
