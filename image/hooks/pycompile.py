"""Byte-compile a foreign root's Python modules with a native Python of the same version.

Usage: python3 -E -S pycompile.py ROOT VERSION < paths
  ROOT     where the target root is mounted (customize.sh bind-mounts it at /target)
  VERSION  the target's Python, e.g. 3.13
  paths    one per line, as the target sees them (/usr/lib/python3.13/os.py)

A .pyc does not depend on the CPU: it is the marshalled code plus a header (the magic of
the Python version, then the source's mtime and size).  Written here as the target's own
`py_compile` would write it (the path the target imports it from as the code's file name,
its symlinks resolved within the target), it is what the device would have compiled, at
~2 s for the ~990 modules instead of ~100 CPU-seconds under qemu-user.  Stops at the first
module that does not compile, as `python3 -m py_compile -` does.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import re
import sys
import time
from pathlib import Path

MAGIC_LINE = re.compile(r"^MAGIC_NUMBER = \((\d+)\)\.to_bytes\(2, 'little'\) \+ b'\\r\\n'$",
                        re.MULTILINE)


def target_magic(root: Path, version: str) -> bytes:
    """The magic the target's import system checks, from its own importlib source."""
    source = root / f"usr/lib/python{version}/importlib/_bootstrap_external.py"
    found = MAGIC_LINE.search(source.read_text())
    if found is None:
        sys.exit(f"pycompile: no MAGIC_NUMBER line in {source}: read it and adapt MAGIC_LINE")
    return int(found.group(1)).to_bytes(2, "little") + b"\r\n"


def inside(root: Path, path: Path) -> Path:
    """`path` (a file under `root`) as the target resolves it: a symlink is followed with
    `root` as /, so /usr/lib/python3.13/sitecustomize.py -> /etc/python3.13/sitecustomize.py
    reads the target's file, not this Python's.  Only the last component can be a link:
    customize.sh lists files with `find`, which does not descend into linked directories."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
    raise RuntimeError(f"symlink loop at {path}")


def main() -> int:
    root, version = Path(sys.argv[1]), sys.argv[2]
    native = f"{sys.version_info.major}.{sys.version_info.minor}"
    magic = target_magic(root, version)
    if native != version or magic != importlib.util.MAGIC_NUMBER:
        sys.exit(f"pycompile: this Python is {native} (magic {importlib.util.MAGIC_NUMBER!r}), "
                 f"the target's is {version} (magic {magic!r}): its .pyc files would be "
                 "rejected and compiled again at every start on the device")
    started = time.monotonic()
    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for path in paths:
        py_compile.compile(str(inside(root, root / path.lstrip("/"))),
                           cfile=f"{root}{importlib.util.cache_from_source(path)}",
                           dfile=path, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    print(f"[INFO] cydynni build: {len(paths)} modules byte-compiled natively in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
