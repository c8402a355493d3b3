"""Host preparation: install missing tools from apt, make arm64 binaries runnable (binfmt),
and check the Ansible chroot connection is available."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from image import log
from image.errors import HostToolError

DEPENDS = Path(__file__).resolve().parent / "depends"
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def read_depends() -> list[tuple[str, str]]:
    pairs = []
    for line in DEPENDS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tool, package = line.rsplit(":", 1)
            pairs.append((tool, package))
    return pairs


def missing_packages() -> list[str]:
    missing = []
    for tool, package in read_depends():
        present = Path(tool).exists() if tool.startswith("/") else shutil.which(tool)
        if not present and package not in missing:
            missing.append(package)
    return missing


def install_tools() -> None:
    """apt-get install whatever `depends` lists and is not there yet."""
    missing = missing_packages()
    if not missing:
        log.info("host tools: all present")
        return
    log.info(f"host tools: installing {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        log.run(["apt-get", "update"], env=env)
        log.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
    except subprocess.CalledProcessError as exc:
        raise HostToolError(f"apt-get could not install {' '.join(missing)} (see the log)") from exc
    still = missing_packages()
    if still:
        raise HostToolError(f"still missing after apt-get install: {' '.join(still)}")


def enable_binfmt(arch: str) -> None:
    """Make sure the kernel runs `arch` binaries through qemu-user (mmdebstrap needs it)."""
    if subprocess.run(["arch-test", arch], capture_output=True).returncode == 0:
        return
    if not (BINFMT / "register").exists():
        log.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=False)
    qemu_arch = {"arm64": "aarch64", "armhf": "arm", "amd64": "x86_64"}.get(arch, arch)
    log.run(["update-binfmts", "--enable", f"qemu-{qemu_arch}"], check=False)
    if subprocess.run(["arch-test", arch], capture_output=True).returncode != 0:
        raise HostToolError(
            f"cannot run {arch} binaries: binfmt_misc for qemu-{qemu_arch} is not registered "
            "(mount binfmt_misc on /proc/sys/fs/binfmt_misc and reinstall qemu-user-static)"
        )


def check_ansible_chroot() -> None:
    result = subprocess.run(
        ["ansible-doc", "-t", "connection", "community.general.chroot"], capture_output=True,
    )
    if result.returncode != 0:
        raise HostToolError(
            "Ansible has no community.general.chroot connection: install Debian's `ansible` "
            "package (not only ansible-core)"
        )


def prepare(arch: str) -> None:
    install_tools()
    enable_binfmt(arch)
    check_ansible_chroot()
