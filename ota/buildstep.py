"""The image build's OTA steps (run by stage-scripts, host side; needs image/ for the config).

    python3 -m ota.buildstep keyring   (40-readonly-finish) keyring + floor into the rootfs
    python3 -m ota.buildstep bundle    (50-export, after deploy) signed bundle into deploy/

Keys: OTA_SIGNING_CERT/OTA_SIGNING_KEY sign the bundle and OTA_KEYRING (CA files) goes into
the image. Left empty, the build uses development keys from OTA_KEY_DIR (default
<repo>/.ota-keys/dev, git-ignored, generated the first time) for both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from image import config as build_config
from image import log
from ota import bundle, keys
from ota import version as versions

COUNTER_FILE = "ota-counter"
BUNDLE_INFO_FILE = "ota-bundle.json"


def key_dir(cfg: build_config.BuildConfig) -> keys.KeyDir:
    configured = cfg["OTA_KEY_DIR"]
    directory = Path(configured) if configured else build_config.REPO_DIR / ".ota-keys" / "dev"
    return keys.KeyDir(directory)


def signing_pair(cfg: build_config.BuildConfig) -> tuple[Path, Path]:
    if cfg["OTA_SIGNING_CERT"] or cfg["OTA_SIGNING_KEY"]:
        cert, key = Path(cfg["OTA_SIGNING_CERT"]), Path(cfg["OTA_SIGNING_KEY"])
        for path in (cert, key):
            if not path.is_file():
                raise keys.KeyGenError(f"{path} not found (OTA_SIGNING_CERT/OTA_SIGNING_KEY)")
        return cert, key
    dev = keys.ensure_development_keys(key_dir(cfg).path)
    return dev.cert, dev.key


def keyring_certs(cfg: build_config.BuildConfig) -> list[Path]:
    if cfg["OTA_KEYRING"]:
        return [Path(p) for p in cfg["OTA_KEYRING"].split()]
    return [keys.ensure_development_keys(key_dir(cfg).path).ca_cert]


def counter(cfg: build_config.BuildConfig, *, fresh: bool = False) -> int:
    """The build counter: chosen by the keyring step (fresh), read back by the bundle step."""
    stored = cfg.work_dir / COUNTER_FILE
    if stored.is_file() and not fresh:
        return int(stored.read_text())
    configured = cfg["OTA_BUILD_COUNTER"]
    value = int(configured) if configured else versions.default_counter()
    stored.write_text(str(value))
    return value


def set_floor(system_conf: Path, floor_version: str) -> None:
    text = system_conf.read_text()
    text, count = re.subn(r"(?m)^min-bundle-version=.*$", f"min-bundle-version={floor_version}",
                          text)
    if count != 1:
        raise SystemExit(f"{system_conf}: expected one min-bundle-version= line")
    system_conf.write_text(text)


def step_keyring(cfg: build_config.BuildConfig) -> None:
    rootfs = cfg.rootfs
    keys.write_keyring(keyring_certs(cfg), rootfs / "etc/rauc/keyring.pem")
    build = counter(cfg, fresh=True)
    version = versions.rauc_version(build, cfg["IMG_VERSION"])
    # RAUC's own downgrade check: a bundle below this rootfs's build is refused.
    set_floor(rootfs / "etc/rauc/system.conf", f"{build}.0.0")
    with (rootfs / "etc/cydynni-image-id").open("a") as out:
        out.write(f"OTA_BUILD_COUNTER={build}\nOTA_VERSION={version}\n")
    log.info(f"OTA keyring: {len(keyring_certs(cfg))} CA(s); build counter {build}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def step_bundle(cfg: build_config.BuildConfig) -> None:
    cert, key = signing_pair(cfg)
    build = counter(cfg)
    out = cfg.deploy_dir / f"{cfg.basename}.raucb"
    keyring = cfg.work_dir / "ota-keyring.pem"
    keys.write_keyring(keyring_certs(cfg), keyring)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ota-", dir=cfg.work_dir) as tmp:
        rootfs = bundle.rootfs_from_sd_image(cfg.work_dir / f"{cfg.basename}.img",
                                             Path(tmp) / bundle.ROOTFS_NAME)
        log.info(f"bundle rootfs {rootfs.stat().st_size // 2**20} MiB (slot A, shrunk, "
                 f"{time.monotonic() - started:.0f} s)")
        started = time.monotonic()
        bundle.make(rootfs, out, compatible=cfg.compatible, counter=build,
                    display_version=cfg["IMG_VERSION"], cert=cert, key=key, keyring=keyring,
                    mksquashfs_args=cfg["RAUC_MKSQUASHFS_ARGS"])
        log.info(f"rauc bundle ({cfg['RAUC_MKSQUASHFS_ARGS']}) took "
                 f"{time.monotonic() - started:.0f} s")
    started = time.monotonic()
    made = bundle.check(out, keyring, compatible=cfg.compatible)
    log.info(f"bundle checked (signature, verity payload) in {time.monotonic() - started:.0f} s")
    digest = sha256(out)
    with (cfg.deploy_dir / f"{cfg.basename}.sha256").open("a") as sums:
        sums.write(f"{digest}  {out.name}\n")
    (cfg.work_dir / BUNDLE_INFO_FILE).write_text(json.dumps(
        {"file": out.name, "bytes": made.size, "sha256": digest, "version": made.version,
         "build_counter": made.counter, "compatible": made.compatible}, indent=2))
    log.info(f"OTA bundle {out.name}: {made.size // 2**20} MiB, version {made.version}")


def main(argv: list[str]) -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    steps = {"keyring": step_keyring, "bundle": step_bundle}
    if len(argv) != 1 or argv[0] not in steps:
        print(f"usage: python3 -m ota.buildstep {'|'.join(steps)}", file=sys.stderr)
        return 2
    steps[argv[0]](cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
