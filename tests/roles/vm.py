"""A native amd64 Debian trixie rootfs provisioned by roles/site.yml, as a bootable disk.

The same steps as the image build, on amd64 so nothing runs under qemu-user: mmdebstrap
with the image's package set, overlays/rootfs copied in, roles/site.yml over a chroot
connection with cydynni_build=true, one update-initramfs, then an MBR disk with the
image's partition layout (FAT boot, root A, root B, data) booted by qemu-system-x86_64
under TCG with user networking restricted to the guest (restrict=on, no forwards).
Used by test_boot.py; runnable by hand: `python -m tests.roles.vm WORKDIR`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from image import config, stages
from tests.roles.tools import apt_install

REPO = Path(__file__).resolve().parents[2]
GUEST_DIR = Path(__file__).resolve().parent / "guest"
SECTOR = 512
MIB = 1024 * 1024
DISK_ID = "0xcd1d2026"  # as build.conf: root A is PARTUUID=cd1d2026-02
BOOT_MIB, ROOT_B_MIB, DATA_MIB, SLACK_MIB = 32, 8, 64, 192

# Host tools, by Debian package (installed by ensure_host_tools when missing).
HOST_PACKAGES = ("mmdebstrap", "qemu-system-x86", "ansible", "dosfstools", "mtools", "fdisk",
                 "e2fsprogs", "arch-test")
# Packages of the image that make no sense (or do not exist) on amd64.
ARM_ONLY = {"linux-image-arm64": "linux-image-amd64", "firmware-brcm80211": None,
            "raspi-firmware": None}


class VmError(Exception):
    """A step of building or booting the test VM failed."""


def run(*args: str | Path, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure raise VmError with the tail of its output."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            check=False, **kwargs)
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(str(a) for a in args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise VmError(f"{Path(str(args[0])).name} failed ({result.returncode}):\n{tail}")
    return result


def ensure_host_tools() -> None:
    apt_install(*HOST_PACKAGES)


def host_debian_mirror() -> str:
    """First Debian archive URI in the host's apt sources (deb822 or one-line format)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for match in re.finditer(r"(?:URIs:|^deb)\s+(?:\[[^\]]*\]\s+)?(\S+)", path.read_text(),
                                 re.MULTILINE):
            uri = match.group(1)
            if "security" not in uri and "debian" in uri:
                return uri
    raise VmError("no Debian mirror in /etc/apt/sources*")


def amd64_packages() -> list[str]:
    """The image's package set (stage lists + every role's list, as the build reads them)."""
    cfg = config.load(environ={"MIRROR": "http://mirror.invalid/debian", "GIT_COMMIT": "vm"})
    wanted = set(stages.all_packages(cfg))
    mapped = {ARM_ONLY.get(p, p) for p in wanted}
    return sorted(p for p in mapped if p)


@dataclass
class Disk:
    image: Path
    kernel: Path
    initrd: Path
    boot_offset: int
    root_offset: int
    root_bytes: int

    def root_digest(self) -> str:
        """sha256 of root A's bytes: proves nothing wrote to the read-only root."""
        out = run("sh", "-c", f"dd if={self.image} bs=1M skip={self.root_offset // MIB} "
                  f"count={self.root_bytes // MIB} status=none | sha256sum").stdout
        return out.split()[0]

    def boot_file(self, name: str) -> str:
        """A file from the FAT boot partition, read with mtools (no vfat in the host kernel)."""
        return run("mtype", "-i", f"{self.image}@@{self.boot_offset}", f"::{name}").stdout


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    mounted: list[Path] = []
    try:
        for name in ("proc", "sys", "dev"):
            target = root / name
            run("mount", "--rbind", f"/{name}", target)
            run("mount", "--make-rslave", target)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-R", str(target)], check=False)


def bootstrap(root: Path, log: Path) -> None:
    run("mmdebstrap", "--mode=root", "--variant=minbase", "--arch=amd64",
        "--components=main", "--dpkgopt=force-unsafe-io",
        f"--include={','.join(amd64_packages())}", "trixie", root, host_debian_mirror(),
        log=log)


def provision(root: Path, log: Path, extra_files: Path | None = None) -> None:
    """What the image build's provisioning stage does: overlay, playbook, one initramfs."""
    run("cp", "-a", f"{REPO / 'overlays/rootfs'}/.", f"{root}/")
    inventory = root.parent / "inventory.ini"
    inventory.write_text(f"[rootfs]\n{root} ansible_connection=community.general.chroot "
                         "ansible_python_interpreter=/usr/bin/python3\n")
    with chroot_mounts(root):
        env = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PATH": "/usr/bin:/bin:"
               "/usr/sbin:/sbin", "ANSIBLE_LOCAL_TEMP": str(root.parent / "ansible-tmp"),
               "HOME": str(root.parent)}
        run("ansible-playbook", "-i", inventory, "-e", "cydynni_build=true",
            REPO / "roles/site.yml", log=log, env=env)
        run("chroot", root, "update-initramfs", "-u", "-k", "all", log=log)
    if extra_files is not None:
        run("cp", "-a", f"{extra_files}/.", f"{root}/")
    # What the image's finishing stage does: nothing from the build left behind.
    for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for path in (root / leftover).glob("*"):
            if path.is_file():
                path.unlink()


def make_disk(root: Path, work: Path, setup_text: str) -> Disk:
    """MBR: p1 FAT CYDYNNIBOOT, p2 root A (ext4 from the rootfs), p3 root B, p4 data."""
    kernel = sorted(root.glob("boot/vmlinuz-*"))[-1]
    initrd = sorted(root.glob("boot/initrd.img-*"))[-1]
    used = int(run("du", "-sb", root).stdout.split()[0])
    root_mib = (int(used * 1.25) // MIB) + 200
    boot_img, root_img, data_img = work / "boot.img", work / "root.img", work / "data.img"
    for path in (boot_img, root_img, data_img):
        path.unlink(missing_ok=True)
    run("mkfs.vfat", "-n", "CYDYNNIBOOT", "-C", boot_img, str(BOOT_MIB * 1024))
    setup = work / "cydynni.txt"
    setup.write_bytes(setup_text.encode())
    run("mcopy", "-i", boot_img, setup, "::cydynni.txt")
    run("mkfs.ext4", "-q", "-L", "cydynni-root-a", "-d", root, root_img, f"{root_mib}M")
    run("mkfs.ext4", "-q", "-L", "cydynni-data", data_img, f"{DATA_MIB}M")

    sizes = [BOOT_MIB, root_mib, ROOT_B_MIB, DATA_MIB]
    starts, position = [], 1
    for size in sizes:
        starts.append(position)
        position += size
    disk = work / "disk.img"
    disk.unlink(missing_ok=True)
    run("truncate", "-s", f"{position + SLACK_MIB}M", disk)
    table = [f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n"]
    for number, (start, size) in enumerate(zip(starts, sizes, strict=True), 1):
        kind = "c" if number == 1 else "83"
        table.append(f"start={start * MIB // SECTOR}, size={size * MIB // SECTOR}, type={kind}\n")
    run("sfdisk", "--quiet", disk, input="".join(table))
    for image, start in ((boot_img, starts[0]), (root_img, starts[1]), (data_img, starts[3])):
        run("dd", f"if={image}", f"of={disk}", "bs=1M", f"seek={start}", "conv=notrunc,sparse",
            "status=none")
        image.unlink()
    return Disk(disk, kernel, initrd, starts[0] * MIB, starts[1] * MIB, root_mib * MIB)


def boot(disk: Disk, console: Path, timeout: float = 600) -> str:
    """Boot once under TCG; return the serial console output. The guest powers itself off."""
    # panic=-1 with -no-reboot: a guest kernel panic ends QEMU at once, not at the timeout.
    cmdline = (f"root=PARTUUID={DISK_ID[2:]}-02 ro rootwait console=ttyS0,115200 "
               "systemd.show_status=false panic=-1")
    # One TCG thread for both vCPUs: with one thread per vCPU (thread=multi) the x86 guest
    # kernel now and then runs a stale int3 left by its own boot-time code patching on the
    # other vCPU and panics ("Oops: int3" in cpu_latency_qos_init, seen in CI on 3 Dec).
    # Measured on this host: ~72 s a boot against ~48 s, the same as -smp 1.
    args = ["qemu-system-x86_64", "-M", "q35", "-accel", "tcg,thread=single", "-cpu", "max",
            "-smp", "2", "-m", "1536", "-display", "none", "-no-reboot", "-monitor", "none",
            "-serial", f"file:{console}", "-kernel", str(disk.kernel), "-initrd",
            str(disk.initrd), "-append", cmdline,
            "-drive", f"file={disk.image},format=raw,if=virtio",
            "-netdev", "user,id=net0,restrict=on", "-device", "virtio-net-pci,netdev=net0"]
    started = time.monotonic()
    try:
        subprocess.run(args, check=True, timeout=timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        raise VmError(f"guest did not power off within {timeout:.0f} s; see {console}") from None
    except subprocess.CalledProcessError as error:
        raise VmError(f"qemu failed: {error.stderr.decode()[-2000:]}") from None
    output = console.read_text(errors="replace")
    if "Kernel panic" in output:
        raise VmError(f"the guest kernel panicked; see {console}")
    print(f"[INFO] boot took {time.monotonic() - started:.0f} s", file=sys.stderr)
    return output


def build(work: Path, setup_text: str, log: Path) -> Disk:
    root = work / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    started = time.monotonic()
    bootstrap(root, log)
    bootstrapped = time.monotonic()
    provision(root, log, extra_files=GUEST_DIR / "rootfs")
    provisioned = time.monotonic()
    disk = make_disk(root, work, setup_text)
    print(f"[INFO] mmdebstrap {bootstrapped - started:.0f} s, overlay + site.yml + initramfs "
          f"{provisioned - bootstrapped:.0f} s, disk {time.monotonic() - provisioned:.0f} s",
          file=sys.stderr)
    return disk


if __name__ == "__main__":
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/cydynni-roles-vm")
    workdir.mkdir(parents=True, exist_ok=True)
    ensure_host_tools()
    built = build(workdir, "hostname = cydynni-dev\n", workdir / "build.log")
    print(boot(built, workdir / "console.log"))
