#!/usr/bin/python3
"""Independent ISO 9660 reader for tests: prints what an image holds, as JSON.

Usage: /usr/bin/python3 iso_read.py IMAGE

Uses pycdlib (Debian package python3-pycdlib; run with /usr/bin/python3, which sees it), a reader
written independently of libisofs. Every file is read twice, once by its Rock Ridge name and once by
its Joliet name, so a test can check both trees byte for byte.

Output (one JSON object):
  volume_id         the primary volume descriptor's volume id, trailing padding removed
  joliet_volume_id  the Joliet volume id (UTF-16), or null without Joliet
  rock_ridge        whether the image has Rock Ridge
  joliet            whether the image has Joliet
  files             {"/path": {"sha256": hex, "size": bytes, "mode": POSIX mode from Rock Ridge}}
                    by Rock Ridge names
  directories       {"/path": {"mode": POSIX mode from Rock Ridge}} by Rock Ridge names, root included
  joliet_files      {"/path": sha256 hex} by Joliet names
  joliet_directories  ["/path", ...] by Joliet names, root excluded
Modes are the full st_mode (file type bits included), as integers.

Exit status: 0 on success, 2 for usage errors, 1 if the image cannot be read.
"""

import hashlib
import io
import json
import sys

try:
    import pycdlib
except ImportError:  # pragma: no cover - environment problem, reported clearly
    sys.stderr.write("iso_read.py: pycdlib is not importable; install python3-pycdlib and run with /usr/bin/python3\n")
    sys.exit(1)


def _join(directory, name):
    return directory.rstrip("/") + "/" + name


def _read(iso, **path):
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def read_image(image_path):
    iso = pycdlib.PyCdlib()
    iso.open(image_path)
    try:
        result = {
            "volume_id": iso.pvd.volume_identifier.decode("ascii", "replace").rstrip(" \x00"),
            "joliet_volume_id": None,
            "rock_ridge": iso.has_rock_ridge(),
            "joliet": iso.has_joliet(),
            "files": {},
            "directories": {},
            "joliet_files": {},
            "joliet_directories": [],
        }

        if result["rock_ridge"]:
            # The root's own record (in the volume descriptor) carries no Rock Ridge entries; its "."
            # entry does.
            for child in iso.list_children(rr_path="/"):
                if child is not None and child.is_dot():
                    result["directories"]["/"] = {"mode": child.rock_ridge.get_file_mode()}
                    break
            for directory, dirnames, filenames in iso.walk(rr_path="/"):
                for name in dirnames:
                    path = _join(directory, name)
                    record = iso.get_record(rr_path=path)
                    result["directories"][path] = {"mode": record.rock_ridge.get_file_mode()}
                for name in filenames:
                    path = _join(directory, name)
                    record = iso.get_record(rr_path=path)
                    data = _read(iso, rr_path=path)
                    result["files"][path] = {
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "mode": record.rock_ridge.get_file_mode(),
                    }

        if result["joliet"]:
            result["joliet_volume_id"] = (
                iso.joliet_vd.volume_identifier.decode("utf-16_be", "replace").rstrip(" \x00")
            )
            for directory, dirnames, filenames in iso.walk(joliet_path="/"):
                for name in dirnames:
                    result["joliet_directories"].append(_join(directory, name))
                for name in filenames:
                    path = _join(directory, name)
                    result["joliet_files"][path] = hashlib.sha256(_read(iso, joliet_path=path)).hexdigest()
            result["joliet_directories"].sort()
        return result
    finally:
        iso.close()


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: iso_read.py IMAGE\n")
        return 2
    try:
        result = read_image(argv[1])
    except Exception as error:  # report any reader failure as a clear message
        sys.stderr.write("iso_read.py: cannot read %s: %s: %s\n" % (argv[1], type(error).__name__, error))
        return 1
    json.dump(result, sys.stdout, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
