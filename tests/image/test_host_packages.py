"""The fresh-machine path: every host command and data file that the image build, the image
tests and `./build.sh qemu` use comes from a package the project's own scripts install.

Declared = image/depends (installed by `python3 -m image build`) + build.sh
TEST_APT_PACKAGES, with their Depends and Pre-Depends (not Recommends: both install with
--no-install-recommends), plus what every Debian host has (Essential and Priority: required
packages). Needed = the programs the code starts (found in the argv lists of image/*.py,
tests/image/*.py and the host-side stage scripts), the tools image/depends names, and the
ROM files QEMU loads for the machines and NICs image/qemu.py asks for (read from QEMU itself).
Each needed file is traced to its Debian package with `dpkg -S`.

A file that this host has only through a Recommends (ipxe-qemu's efi-virtio.rom under
qemu-system-arm) fails here, while it would fail on a fresh machine at boot time.
Needs no root and no image; needs the host tools installed (the build does that).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from image import host, qemu
from image.config import REPO_DIR

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # never a venv's or pyenv's python3
HOST_PYTHON_SOURCES = (*sorted((REPO_DIR / "image").glob("*.py")),
                       *sorted((REPO_DIR / "tests/image").glob("*.py")))
# ansible_launch.py runs inside the rootfs: what it starts is the rootfs's, not the host's.
NOT_HOST = {"ansible_launch.py"}
HOST_SHELL_STEPS = sorted((REPO_DIR / "stage-scripts").glob("*/*/[0-9][0-9]-run.sh"))
RUN_CALLS = {"run", "Popen", "check_call", "check_output", "call", "output"}
ARGV_NAMES = {"argv", "cmd", "command"}
ALT_DEP = re.compile(r"^ ([ |])(?:Pre)?Depends: (.+)$")  # "|": or the next one


def build_sh_test_packages() -> list[str]:
    text = (REPO_DIR / "build.sh").read_text()
    match = re.search(r"^TEST_APT_PACKAGES=\(([^)]*)\)", text, re.MULTILINE)
    assert match, "build.sh has no TEST_APT_PACKAGES=(...) array"
    return re.sub(r"#.*", "", match.group(1)).split()


def declared_packages() -> set[str]:
    return {package for _, package in host.read_depends()} | set(build_sh_test_packages())


def fresh_host_packages() -> set[str]:
    """Installed here and on every Debian host: Essential: yes or Priority: required."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Essential} ${Priority}\n"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines()
            if " yes " in f" {line} " or line.endswith(" required")}


def _strip_arch(name: str) -> str:
    return name.split(":", 1)[0]


def depends_closure(roots: set[str]) -> set[str]:
    """roots + Depends/Pre-Depends, transitively, as apt picks them: the first alternative
    of an `a | b` group, the first provider of a virtual package."""
    seen: set[str] = set()
    todo = {_strip_arch(r) for r in roots}
    while todo:
        batch = sorted(todo - seen)
        todo = set()
        if not batch:
            break
        seen.update(batch)
        out = subprocess.run(
            ["apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
             "--no-breaks", "--no-replaces", "--no-enhances", *batch],
            capture_output=True, text=True, check=False).stdout
        in_alternatives = False
        pending_virtual = False
        for line in out.splitlines():
            if pending_virtual and line.startswith("    "):
                todo.add(_strip_arch(line.strip()))
                pending_virtual = False
                continue
            pending_virtual = False
            match = ALT_DEP.match(line)
            if not match:
                in_alternatives = False
                continue
            continues, target = match.group(1) == "|", match.group(2).strip()
            if not in_alternatives:  # the first of a group (or a plain dependency)
                if target.startswith("<"):
                    pending_virtual = True
                else:
                    todo.add(_strip_arch(target))
            in_alternatives = continues
    return seen


@functools.cache
def installable_here() -> frozenset[str]:
    """What the project's scripts give a fresh Debian host, with all dependencies."""
    return frozenset(depends_closure(declared_packages() | fresh_host_packages()))


def _twins(path: str) -> list[str]:
    """path, its link target, and the usr-merged twin of each (dpkg knows one of them)."""
    names = []
    for candidate in (path, os.path.realpath(path)):
        names.append(candidate)
        names.append(candidate.removeprefix("/usr") if candidate.startswith("/usr/")
                     else "/usr" + candidate)
    return names


def owners(paths: list[str]) -> dict[str, str | None]:
    """The package that ships each path, from one `dpkg -S` over all their twins."""
    result = subprocess.run(["dpkg", "-S", *{t for p in paths for t in _twins(p)}],
                            capture_output=True, text=True, check=False)
    shipped: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if not line.startswith("diversion "):
            packages, _, path = line.partition(": ")
            shipped[path] = _strip_arch(packages.split(", ")[0])
    return {p: next((shipped[t] for t in _twins(p) if t in shipped), None) for p in paths}


def _argv_head(node: ast.AST) -> str | None:
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return None
    first = node.elts[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) \
            and re.fullmatch(r"[a-z][\w.+-]*", first.value):
        return first.value
    return None


def python_commands(path: Path) -> set[str]:
    """argv[0] of the literal argv lists a module passes to subprocess/log runners, assigns
    to argv/cmd/command or returns as an argv."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in RUN_CALLS and node.args and (head := _argv_head(node.args[0])):
                found.add(head)
        elif isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            if names & ARGV_NAMES and (head := _argv_head(node.value)):
                found.add(head)
        elif isinstance(node, ast.Return) and (head := _argv_head(node.value)) \
                and head.startswith("qemu-"):
            found.add(head)
    return found


def shell_commands(path: Path) -> set[str]:
    """First word of each command line of a host-side `NN-run.sh` step."""
    found = set()
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == "exec":
            words = words[1:]
        if words and re.fullmatch(r"[a-z][\w.+-]*", words[0]):
            found.add(words[0])
    return found


def host_commands() -> dict[str, set[str]]:
    """command → the files that start it."""
    uses: dict[str, set[str]] = {}
    for path in HOST_PYTHON_SOURCES:
        if path.name not in NOT_HOST:
            for command in python_commands(path):
                uses.setdefault(command, set()).add(str(path.relative_to(REPO_DIR)))
    for path in HOST_SHELL_STEPS:
        for command in shell_commands(path):
            uses.setdefault(command, set()).add(str(path.relative_to(REPO_DIR)))
    for tool, _ in host.read_depends():
        if not tool.startswith("/"):
            uses.setdefault(tool, set()).add("image/depends")
    return uses


def qemu_search_dirs() -> list[Path]:
    out = subprocess.run(["qemu-system-aarch64", "-L", "help"], capture_output=True, text=True,
                         check=True).stdout
    return [Path(os.path.normpath(line.strip())) for line in out.splitlines() if line.strip()]


def qemu_romfiles(argv: list[str], timeout: float = 60) -> tuple[set[str], str]:
    """ROM files QEMU wants for this command line: the romfile of every device after it is
    realized (`info qtree`, started paused with -S), or the one it failed to find."""
    argv = list(argv)
    if "-monitor" in argv:
        index = argv.index("-monitor")
        del argv[index:index + 2]
    argv = [a if not a.startswith(("mon:", "file:")) else "null" for a in argv]
    argv += ["-S", "-monitor", "stdio"]
    started = time.monotonic()
    result = subprocess.run(argv, input="info qtree\nquit\n", capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert time.monotonic() - started < timeout
    output = result.stdout + result.stderr
    names = set(re.findall(r'romfile = "([^"]+)"', output))
    names |= set(re.findall(r'failed to find romfile "([^"]+)"', output))
    return names, output


def qemu_command_lines(tmp_path: Path) -> dict[str, list[str]]:
    """The command lines image/qemu.py builds (./build.sh qemu, the virt and raspi3b tests),
    with small stand-in files: ROM loading does not depend on their contents."""
    disk, firmware = tmp_path / "disk.img", tmp_path / "u-boot.bin"
    disk.write_bytes(b"\0" * (1 << 20))  # a power of two: the raspi3b SD model wants one
    firmware.write_bytes(b"\0" * 4096)
    forwards = {qemu.free_port(): 80}
    raspi = qemu.raspi3b_command(firmware, firmware, disk, tmp_path / "console.log")
    index = raspi.index("-dtb")  # a stand-in DTB would not parse; the DTB loads no ROM
    del raspi[index:index + 2]
    return {"virt (./build.sh qemu, test_boot_qemu)": qemu.command(disk, firmware, forwards),
            "raspi3b (test_boot_raspi3b)": raspi}


def not_provided(paths: dict[str, str]) -> list[str]:
    """`what (path): why` for each path whose package a fresh host would not get."""
    gaps = []
    shipped = owners(list(paths.values()))
    for what, path in sorted(paths.items()):
        package = shipped[path]
        if package is None:
            gaps.append(f"{what} ({path}): no installed package ships it")
        elif package not in installable_here():
            gaps.append(f"{what} ({path}): from {package}, which neither image/depends nor "
                        "build.sh TEST_APT_PACKAGES installs (directly or as a Depends)")
    return gaps


def test_the_scan_finds_the_commands_we_know_of() -> None:
    commands = host_commands()
    for command in ("mmdebstrap", "qemu-system-aarch64", "ansible-playbook", "mkfs.ext4",
                    "mcopy", "bmaptool", "sfdisk", "ssh-keygen", "python3", "chroot"):
        assert command in commands, command


def test_every_host_command_comes_from_a_declared_package() -> None:
    paths, missing = {}, []
    for command, users in sorted(host_commands().items()):
        found = shutil.which(command, path=SYSTEM_PATH)
        if found is None:
            missing.append(f"{command} (used by {', '.join(sorted(users))}): not installed")
        else:
            paths[command] = found
    gaps = missing + not_provided(paths)
    assert gaps == [], "\n".join(gaps)


def test_every_host_file_image_depends_names_comes_from_a_declared_package() -> None:
    files = {tool: tool for tool, _ in host.read_depends() if tool.startswith("/")}
    assert not_provided(files) == []


def test_image_depends_names_the_package_that_ships_each_tool() -> None:
    wrong = []
    paths = {tool: tool if tool.startswith("/") else shutil.which(tool, path=SYSTEM_PATH)
             for tool, _ in host.read_depends()}
    shipped = owners([p for p in paths.values() if p])
    for tool, package in host.read_depends():
        shipped_by = shipped.get(paths[tool] or "")
        if shipped_by not in (None, package) and shipped_by not in depends_closure({package}):
            wrong.append(f"{tool}: shipped by {shipped_by}, depends says {package}")
    assert wrong == [], "\n".join(wrong)


def test_every_rom_qemu_loads_comes_from_a_declared_package(tmp_path: Path) -> None:
    if shutil.which("qemu-system-aarch64", path=SYSTEM_PATH) is None:
        pytest.fail("qemu-system-aarch64 is not installed: `python3 -m image host-tools`")
    dirs = qemu_search_dirs()
    roms: dict[str, str] = {}
    gaps = []
    for label, argv in qemu_command_lines(tmp_path).items():
        names, output = qemu_romfiles(argv)
        if not names and "-nic" in argv and "none" not in argv[argv.index("-nic") + 1]:
            gaps.append(f"{label}: QEMU reported no ROM for its NIC:\n{output[-1500:]}")
        for name in sorted(names):
            found = next((d / name for d in dirs if (d / name).exists()), None)
            if found is None:
                gaps.append(f"{label}: QEMU needs {name}, not in {', '.join(map(str, dirs))}")
            else:
                roms[f"{label}: {name}"] = str(found)
    gaps += not_provided(roms)
    assert gaps == [], "\n".join(gaps)
