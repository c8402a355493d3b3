"""T13 of shared/reference/ota.md §2: no code from a bundle runs as root before the bundle is
verified. Real `rauc` throughout: the agent's check (Agent.check_bundle, `rauc info` with
the device keyring), `ota verify` (ota.bundle.check) and `rauc install` through a real RAUC
service with file-backed slots (tests/ota/raucservice.py).

Every bundle here carries a shell hook that creates a marker file (as root: the tests run
as root, like RAUC on the hub). RAUC runs bundle hooks (`install-check`, slot hooks) only
during `rauc install`, from the mounted bundle, after the signature check; `rauc info` and
the agent's check never run them.

What this host can and cannot do: its kernel has no dm-verity, so a verity bundle (the only
format the hub accepts, `bundle-formats=-plain`) cannot be installed here. The install
path is therefore shown with RAUC's *plain* format, which RAUC mounts over a loop device
after checking the signature over the whole file: a correctly signed plain bundle's
install-check hook does run (the positive control: the marker mechanism works and RAUC
executes declared hooks), while the same hook in a bundle signed by another CA, or in an
unsigned bundle, never runs, and an undeclared `hook.sh` in a validly signed bundle is
never run by a complete install. The verity case of "tampered after signing" is caught by
dm-verity while RAUC mounts the bundle on the hub (QEMU journey); on the host, `ota verify`
checks the payload blocks against the signed root hash in user space (shown below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota import bundle, keys
from ota.agent.config import AgentConfig
from ota.agent.core import Agent
from ota.errors import BundleError, OtaError
from tests.ota import raucservice
from tests.ota.conftest import COMPATIBLE

HOOKS_SECTION = "\n[hooks]\nfilename=hook.sh\nhooks=install-check\n"


def hook_script(marker: Path) -> str:
    """Creates `marker` whenever it runs; as install-check it then rejects the bundle (so a
    positive control stops before writing a slot). Random bytes after `exit` keep squashfs
    from compressing it, so its text can be found (and tampered with) in the bundle."""
    tail = os.urandom(8192).replace(b"\n", b" ").decode("latin-1")
    return (f"#!/bin/sh\ntouch '{marker}'\n"
            "if [ \"$1\" = install-check ]; then echo 'T13 probe hook ran' >&2; exit 10; fi\n"
            f"exit 0\n# {tail}\n")


def make(out: Path, rootfs: Path, marker: Path, *, signer: keys.KeyDir | None,
         declare_hook: bool, fmt: str = "verity", counter: int = 1300) -> Path:
    """A bundle whose content holds hook.sh (declared in [hooks] or not); signed by
    `signer` with `rauc bundle`, or (signer None) an unsigned squashfs of the same content."""
    content = out.with_suffix(".content")
    content.mkdir()
    manifest = bundle.manifest_text(COMPATIBLE, f"{counter}.0.0+t13", str(counter), "t13")
    manifest = manifest.replace("format=verity", f"format={fmt}")
    (content / "manifest.raucm").write_text(manifest + (HOOKS_SECTION if declare_hook else ""))
    shutil.copy(rootfs, content / bundle.ROOTFS_NAME)
    hook = content / "hook.sh"
    hook.write_bytes(hook_script(marker).encode("latin-1"))
    hook.chmod(0o755)
    if signer is None:
        subprocess.run(["mksquashfs", content, out, "-quiet", "-all-root"], check=True,
                       capture_output=True)
    else:
        subprocess.run(["rauc", "bundle", f"--cert={signer.cert}", f"--key={signer.key}",
                        content, out], check=True, capture_output=True)
    return out


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "hook-ran"


@pytest.fixture
def agent(tmp_path: Path, dev_keys: keys.KeyDir) -> Agent:
    conf = tmp_path / "system.conf"
    conf.write_text(f"[system]\ncompatible={COMPATIBLE}\nbootloader=uboot\n")
    return Agent(AgentConfig(server_url="http://127.0.0.1:9", tenant="DEFAULT",
                             controller_id="t13", token="t13-token", state_dir=tmp_path / "ota",
                             keyring=dev_keys.ca_cert, system_conf=conf))


@pytest.fixture
def rauc(tmp_path: Path, dev_keys: keys.KeyDir) -> Iterator[raucservice.RaucService]:
    env = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}
    with raucservice.running(tmp_path / "rauc", dev_keys.ca_cert, "A", env) as service:
        yield service


def rauc_install(service: raucservice.RaucService, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["rauc", "install", path], env=service.env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.parametrize("signed_by", ["other CA", "nobody"])
def test_t13_declared_hook_of_an_unverified_bundle_never_runs_in_the_check(
        tmp_path: Path, rootfs_image: Path, other_keys: keys.KeyDir, dev_keys: keys.KeyDir,
        agent: Agent, marker: Path, signed_by: str) -> None:
    signer = other_keys if signed_by == "other CA" else None
    path = make(tmp_path / "evil.raucb", rootfs_image, marker, signer=signer,
                declare_hook=True)
    with pytest.raises(OtaError, match=r"rauc .*failed: .*(signature|bundle)"):
        agent.check_bundle(path)
    with pytest.raises(BundleError):
        bundle.check(path, dev_keys.ca_cert, compatible=COMPATIBLE)
    assert not marker.exists()


@pytest.mark.parametrize("signed_by", ["other CA", "nobody"])
def test_t13_rauc_install_refuses_an_unverified_bundle_before_its_hook_runs(
        tmp_path: Path, rootfs_image: Path, other_keys: keys.KeyDir, rauc, marker: Path,
        signed_by: str) -> None:
    signer = other_keys if signed_by == "other CA" else None
    for fmt in ("verity", "plain"):
        path = make(tmp_path / f"evil-{fmt}.raucb", rootfs_image, marker, signer=signer,
                    declare_hook=True, fmt=fmt)
        done = rauc_install(rauc, path)
        assert done.returncode != 0, done.stdout
        assert "signature" in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
        assert not marker.exists(), fmt
    assert rauc.fw_env()["BOOT_ORDER"] == "A B"  # nothing was activated


def test_t13_positive_control_a_verified_bundle_runs_its_declared_hook(
        tmp_path: Path, rootfs_image: Path, dev_keys: keys.KeyDir, rauc,
        marker: Path) -> None:
    """Without this, an absent marker could mean the hook can never run at all."""
    path = make(tmp_path / "good.raucb", rootfs_image, marker, signer=dev_keys,
                declare_hook=True, fmt="plain")
    done = rauc_install(rauc, path)
    assert marker.exists(), done.stdout + done.stderr
    assert done.returncode != 0 and "T13 probe hook ran" in done.stdout + done.stderr


def test_t13_undeclared_hook_in_a_valid_bundle_is_ignored(
        tmp_path: Path, rootfs_image: Path, dev_keys: keys.KeyDir, agent: Agent, rauc,
        marker: Path) -> None:
    verity = make(tmp_path / "extra.raucb", rootfs_image, marker, signer=dev_keys,
                  declare_hook=False)
    found = agent.check_bundle(verity)  # valid: accepted, and its hook.sh is not a hook
    assert found["version"] == "1300.0.0+t13" and not found.get("hooks")
    assert not marker.exists()
    # A complete install on the host (plain format, see the module docstring): the slot is
    # written and activated, hook.sh is never run.
    plain = make(tmp_path / "extra-plain.raucb", rootfs_image, marker, signer=dev_keys,
                 declare_hook=False, fmt="plain")
    done = rauc_install(rauc, plain)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rauc.fw_env()["BOOT_ORDER"].startswith("B")
    assert not marker.exists()


def test_t13_hook_tampered_after_signing_is_refused(tmp_path: Path, rootfs_image: Path,
                                                    dev_keys: keys.KeyDir,
                                                    marker: Path) -> None:
    """The hook's text is rewritten inside a validly signed verity bundle: the signature
    still matches (it covers the manifest and the dm-verity root hash), the payload does not.
    `ota verify` checks every block against the signed root hash and refuses; on the hub,
    dm-verity refuses the same block while RAUC mounts the bundle, before any hook."""
    path = make(tmp_path / "signed.raucb", rootfs_image, marker, signer=dev_keys,
                declare_hook=True)
    bundle.check(path, dev_keys.ca_cert, compatible=COMPATIBLE)  # intact: accepted
    data = bytearray(path.read_bytes())
    at = data.find(f"touch '{marker}'".encode())
    assert at > 0, "the hook's text is not stored verbatim in the bundle"
    data[at:at + 5] = b"rm -f"
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="veritysetup"):
        bundle.check(path, dev_keys.ca_cert, compatible=COMPATIBLE)
    assert not marker.exists()
