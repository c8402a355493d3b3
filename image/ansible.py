"""Apply playbooks to the rootfs over Ansible's community.general.chroot connection.

Ansible runs on the host; each module runs with the rootfs's /usr/bin/python3 (under
qemu-user). Units are enabled, never started: systemctl refuses to start in a chroot and
policy-rc.d blocks invoke-rc.d.
"""

from __future__ import annotations

import json
from pathlib import Path

from image import log
from image.chroot import api_filesystems
from image.config import REPO_DIR, BuildConfig

HOST_GROUP = "cydynni"


def write_inventory(cfg: BuildConfig) -> Path:
    """ansible.cfg + inventory in WORK_DIR/ansible; returns the ansible.cfg path."""
    base = cfg.work_dir / "ansible"
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    (base / "inventory.ini").write_text(
        f"[{HOST_GROUP}]\n"
        f"rootfs ansible_host={cfg.rootfs} ansible_connection=community.general.chroot "
        "ansible_python_interpreter=/usr/bin/python3\n"
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
        "[connection]\n"
        "pipelining = True\n"
    )
    return base / "ansible.cfg"


def extra_vars(cfg: BuildConfig) -> dict[str, object]:
    """Variables every playbook gets: tells roles they run in an image build."""
    return {
        "cydynni_build": True,
        "cydynni_repo_dir": str(REPO_DIR),
        "cydynni_image_version": cfg["IMG_VERSION"],
        "cydynni_rauc_compatible": cfg.compatible,
    }


def apply(cfg: BuildConfig, playbooks: list[Path]) -> None:
    env = cfg.environ()
    env.update(ANSIBLE_CONFIG=str(write_inventory(cfg)), ANSIBLE_FORCE_COLOR="0")
    with api_filesystems(cfg.rootfs):
        for playbook in playbooks:
            log.info(f"ansible-playbook {playbook.relative_to(REPO_DIR)}")
            log.run(
                ["ansible-playbook", str(playbook), "--extra-vars", json.dumps(extra_vars(cfg))],
                env=env, cwd=REPO_DIR,
            )
