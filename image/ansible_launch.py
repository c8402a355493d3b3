"""Module launcher for Ansible over the chroot connection (copied into the rootfs's /run).

It runs under the *host's* x86_64 Python (native speed), started through the host's dynamic
loader from the host root bind-mounted read-only at /run/cydynni-host. Every module acts on
the rootfs (the process is chrooted); external programs it calls (systemctl, useradd, dpkg)
are the rootfs's arm64 binaries under qemu-user as usual. Modules that need the rootfs's own
Python libraries (python3-apt) or must describe the target (facts) are handed to the
rootfs's /usr/bin/python3 instead. Measured: ~0.5 s per task instead of ~6-20 s.

Keep it stdlib-only and compatible with Python 3.11.
"""

import os
import subprocess
import sys

# AnsiballZ wrappers name their module in clear text: run these with the target's Python.
TARGET_PYTHON_MODULES = tuple(
    f"mod_name='ansible.modules.{name}'".encode()
    for name in ("apt", "apt_key", "apt_repository", "dpkg_selections", "package_facts", "setup")
)
TARGET_PYTHON = "/usr/bin/python3"


def main() -> None:
    args = sys.argv[1:]
    if args:
        with open(args[0], "rb") as handle:
            source = handle.read()
    else:
        source = sys.stdin.buffer.read()
    # PYTHONHOME points at the host's stdlib: programs the module starts (the rootfs's own
    # python3 included) must not inherit it.
    for name in [k for k in os.environ if k.startswith("PYTHON")]:
        del os.environ[name]
    if any(name in source for name in TARGET_PYTHON_MODULES):
        if args:
            sys.exit(subprocess.run([TARGET_PYTHON, *args]).returncode)
        sys.exit(subprocess.run([TARGET_PYTHON], input=source).returncode)
    sys.argv = args or [sys.argv[0]]
    namespace = {"__name__": "__main__", "__file__": args[0] if args else "<stdin>"}
    exec(compile(source, namespace["__file__"], "exec"), namespace)


main()
