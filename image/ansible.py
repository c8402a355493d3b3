"""Apply playbooks to the rootfs over Ansible's community.general.chroot connection.

Ansible runs on the host. Under qemu-user every module costs 6-20 s of emulated Python
start-up and byte-compilation, so with ANSIBLE_NATIVE_PYTHON=yes modules run under the
host's own Python inside the chroot instead (see ansible_launch.py; the few modules that
need the target's Python still get it). Units are enabled, never started: systemctl refuses
to start in a chroot and policy-rc.d blocks invoke-rc.d.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from image import log
from image.chroot import api_filesystems
from image.config import REPO_DIR, BuildConfig

HOST_GROUP = "cydynni"
HOST_ROOT = "run/cydynni-host"  # host / bind-mounted read-only (under the build's /run tmpfs)
LAUNCHER = "run/cydynni-ansible/launch.py"
HOST_PYTHON = Path("/usr/bin/python3")
HOST_LOADER = Path("/lib64/ld-linux-x86-64.so.2")


def native_interpreter() -> str:
    """Interpreter string running the host's Python inside the chroot through its loader."""
    host = f"/{HOST_ROOT}"
    loader = host + os.path.realpath(HOST_LOADER)
    libs = ":".join(f"{host}{d}" for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"))
    python = host + os.path.realpath(HOST_PYTHON)
    return (f"PYTHONHOME={host}/usr PYTHONDONTWRITEBYTECODE=1 {loader} --library-path {libs} "
            f"{python} -S /{LAUNCHER}")


@contextmanager
def host_python(rootfs: Path) -> Iterator[None]:
    """Host root read-only inside the rootfs plus the launcher; gone when the block ends."""
    target = rootfs / HOST_ROOT
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", "/", str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        (rootfs / LAUNCHER).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("ansible_launch.py"), rootfs / LAUNCHER)
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=False)


def write_inventory(cfg: BuildConfig, interpreter: str) -> Path:
    """ansible.cfg + inventory in WORK_DIR/ansible; returns the ansible.cfg path."""
    base = cfg.work_dir / "ansible"
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    (base / "inventory.ini").write_text(
        f"[{HOST_GROUP}]\n"
        f"rootfs ansible_host={cfg.rootfs} ansible_connection=community.general.chroot "
        f"ansible_python_interpreter='{interpreter}'\n"
    )
    (base / "ansible.cfg").write_text(
        "[defaults]\n"
        f"inventory = {base / 'inventory.ini'}\n"
        f"roles_path = {REPO_DIR / 'roles'}\n"
        f"local_tmp = {base / 'tmp'}\n"
        "remote_tmp = /tmp/.ansible\n"
        "retry_files_enabled = False\n"
        "host_key_checking = False\n"
        "nocolor = True\n"
        # Seconds per task and the slowest tasks in deploy/build.log (Debian's ansible
        # package ships ansible.posix; a missing callback is only a warning).
        "callbacks_enabled = ansible.posix.profile_tasks\n"
        "[connection]\n"
        "pipelining = True\n"
    )
    return base / "ansible.cfg"


def extra_vars(cfg: BuildConfig) -> dict[str, object]:
    """Variables every playbook gets: tells roles they run in an image build. No image
    version: it changes with every commit, so what the stage cache keeps must not depend on
    it (40-readonly-finish stamps it)."""
    return {
        "cydynni_build": True,
        "cydynni_repo_dir": str(REPO_DIR),
        "cydynni_rauc_compatible": cfg.compatible,
    }


def apply(cfg: BuildConfig, playbooks: list[Path]) -> None:
    native = cfg["ANSIBLE_NATIVE_PYTHON"] == "yes" and HOST_LOADER.exists()
    interpreter = native_interpreter() if native else "/usr/bin/python3"
    env = cfg.environ()
    env.update(ANSIBLE_CONFIG=str(write_inventory(cfg, interpreter)), ANSIBLE_FORCE_COLOR="0")
    with api_filesystems(cfg.rootfs), host_python(cfg.rootfs) if native else _nothing():
        for playbook in playbooks:
            log.info(f"ansible-playbook {playbook.relative_to(REPO_DIR)}")
            log.run(
                ["ansible-playbook", str(playbook), "--extra-vars", json.dumps(extra_vars(cfg))],
                env=env, cwd=REPO_DIR,
            )


@contextmanager
def _nothing() -> Iterator[None]:
    yield
