"""Unit tests of the builder's pure parts (no root, no image): config, stage discovery,
disk layout, apt sources, the boot script's syntax."""

from __future__ import annotations

import importlib.util
import itertools
import marshal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from image import bootstrap, config, disk, stages
from image.errors import ConfigError
from image.hooks import pycompile

BASE_ENV = {"MIRROR": "http://mirror.invalid/debian", "IMG_VERSION": "1.0", "GIT_COMMIT": "abc"}


def load(**overrides: str) -> config.BuildConfig:
    return config.load(environ={**BASE_ENV, **overrides})


def test_parse_conf_strips_quotes_and_comments(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text("# comment\n\nA=1\nB=\"two words\"\nC='x'\nD=\n")
    assert config.parse_conf(conf) == {"A": "1", "B": "two words", "C": "x", "D": ""}


def test_parse_conf_rejects_non_assignments(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text("export A=1\n")
    with pytest.raises(ConfigError, match=r"x\.conf:1"):
        config.parse_conf(conf)


def test_environment_overrides_defaults() -> None:
    cfg = load(ROOT_SIZE_MIB="2048", SUITE="forky")
    assert cfg.mib("ROOT_SIZE_MIB") == 2048 and cfg["SUITE"] == "forky"
    assert cfg.basename == "cydynni-hub-1.0-rpi-arm64"
    assert cfg.compatible == "cydynni-hub-rpi-arm64"


def test_extra_file_with_unknown_variable_is_refused(tmp_path: Path) -> None:
    extra = tmp_path / "extra.conf"
    extra.write_text("ROOT_SIZ_MIB=10\n")
    with pytest.raises(ConfigError, match="ROOT_SIZ_MIB"):
        config.load(extra, environ=BASE_ENV)


@pytest.mark.parametrize(("name", "value"), [
    ("ROOT_SIZE_MIB", "big"), ("BOOT_SIZE_MIB", "16"), ("DISK_ID", "1234"),
    ("IMG_VERSION", "1.0 beta"), ("WORK_DIR", "/var"), ("KEYRING", "/nonexistent"),
])
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


def test_version_defaults_to_date_and_commit() -> None:
    cfg = config.load(environ={"MIRROR": BASE_ENV["MIRROR"], "GIT_COMMIT": "abc"})
    assert cfg["IMG_VERSION"].endswith("-gabc")


def test_actions_run_in_prefix_then_kind_order(tmp_path: Path) -> None:
    step = tmp_path / "00-step"
    step.mkdir()
    for name in ("01-run.sh", "00-run-chroot.sh", "00-packages", "01-ansible", "00-notes.txt"):
        (step / name).write_text("")
    kinds = [(a.path.name, a.kind) for a in stages.actions(step)]
    assert kinds == [("00-packages", "packages"), ("00-run-chroot.sh", "run-chroot.sh"),
                     ("01-run.sh", "run.sh"), ("01-ansible", "ansible")]
    assert [p.name for p in stages.unknown_files(step)] == ["00-notes.txt"]


def test_all_packages_skip_skipped_stages(tmp_path: Path) -> None:
    for stage, step, names in (("00-a", "00-x", "foo bar # baz"), ("10-b", "00-y", "qux")):
        (tmp_path / stage / step).mkdir(parents=True)
        (tmp_path / stage / step / "00-packages").write_text(names + "\n")
    (tmp_path / "10-b" / "SKIP").write_text("")
    cfg = load(STAGE_LIST=f"{tmp_path}/00-a {tmp_path}/10-b")
    assert stages.all_packages(cfg) == ["bar", "foo"]


def test_repo_package_lists_hold_what_the_hub_needs() -> None:
    names = set(stages.all_packages(load()))
    for package in ("linux-image-arm64", "rauc", "rauc-service", "libubootenv-tool",
                    "mosquitto", "redis-server", "mariadb-server", "python3-bottle",
                    "python3-paho-mqtt", "python3-cheroot", "openssh-server"):
        assert package in names
    assert "raspi-firmware" not in names


def test_layout_is_contiguous_aligned_and_same_size_slots() -> None:
    parts = disk.layout(load())
    assert parts[0].start * 512 % (4 << 20) == 0
    for before, after in itertools.pairwise(parts):
        assert before.start + before.size == after.start
    assert parts[1].size == parts[2].size
    script = disk.sfdisk_script(load(), parts)
    assert "label-id: 0xcd1d2026" in script and script.count("bootable") == 1


def test_filesystem_uuids_are_stable_and_differ_per_slot() -> None:
    cfg = load()
    assert disk.fs_uuid(cfg, "cydynni-root-a") == disk.fs_uuid(load(), "cydynni-root-a")
    assert disk.fs_uuid(cfg, "cydynni-root-a") != disk.fs_uuid(cfg, "cydynni-root-b")


def test_sources_add_updates_and_security_for_debian() -> None:
    lines = bootstrap.sources(load())
    assert lines[0] == "deb http://mirror.invalid/debian trixie main non-free-firmware"
    assert any("trixie-security" in line for line in lines)
    other = bootstrap.sources(load(MIRROR="http://archive.example/raspbian"))
    assert not any("security" in line for line in other)


def test_boot_script_compiles(tmp_path: Path) -> None:
    mkimage = subprocess.run(["which", "mkimage"], capture_output=True)
    if mkimage.returncode != 0:
        pytest.skip("mkimage (u-boot-tools) not installed; ./build.sh installs it")
    out = tmp_path / "boot.scr"
    subprocess.run(["mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none",
                    "-d", str(config.REPO_DIR / "overlays/boot/boot.cmd"), str(out)],
                   check=True, capture_output=True)
    text = (config.REPO_DIR / "overlays/boot/boot.cmd").read_text()
    assert "'" not in text, "U-Boot hush mis-parses apostrophes, even in comments"


def test_native_byte_compile_reads_the_targets_files_and_checks_its_magic(tmp_path: Path
                                                                           ) -> None:
    """hooks/pycompile.py compiles a foreign root from outside it: an absolute symlink
    (sitecustomize.py -> /etc/...) must resolve inside the root, and a Python whose magic
    is not the target's must refuse rather than write .pyc files the device would reject."""
    root = tmp_path / "root"
    lib = root / "usr/lib/python3.99"
    (lib / "importlib").mkdir(parents=True)
    (root / "etc/python3.99").mkdir(parents=True)
    (root / "etc/python3.99/sitecustomize.py").write_text("TARGET = True\n")
    (lib / "sitecustomize.py").symlink_to("/etc/python3.99/sitecustomize.py")
    (lib / "alias.py").symlink_to("../python3.99/./sitecustomize.py")
    (lib / "importlib/_bootstrap_external.py").write_text(
        "MAGIC_NUMBER = (3571).to_bytes(2, 'little') + b'\\r\\n'\n")
    real = root / "etc/python3.99/sitecustomize.py"
    assert pycompile.inside(root, lib / "sitecustomize.py") == real
    assert pycompile.inside(root, lib / "alias.py") == real
    assert pycompile.target_magic(root, "3.99") == b"\xf3\r\r\n"
    run = subprocess.run([sys.executable, "-E", "-S", pycompile.__file__, str(root), "3.99"],
                         input="/usr/lib/python3.99/sitecustomize.py\n", capture_output=True,
                         text=True)
    assert run.returncode != 0 and "would be rejected" in run.stderr
    assert not list(root.rglob("*.pyc"))


def test_native_byte_compile_writes_what_the_target_would(tmp_path: Path) -> None:
    """With a matching version and magic (here: this Python's own), the .pyc lands next to
    the path the target imports, with the target file's mtime/size and that path as the
    code's file name."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    number = int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")
    root = tmp_path / "root"
    lib = root / f"usr/lib/python{version}"
    (lib / "importlib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/site.py").write_text("TARGET = True\n")
    (lib / "sitecustomize.py").symlink_to("/etc/site.py")
    (lib / "importlib/_bootstrap_external.py").write_text(
        f"MAGIC_NUMBER = ({number}).to_bytes(2, 'little') + b'\\r\\n'\n")
    name = f"/usr/lib/python{version}/sitecustomize.py"
    run = subprocess.run([sys.executable, "-E", "-S", pycompile.__file__, str(root), version],
                         input=name + "\n", capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    pyc = root / importlib.util.cache_from_source(name).lstrip("/")
    data = pyc.read_bytes()
    st = (root / "etc/site.py").stat()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert struct.unpack("<3I", data[4:16]) == (0, int(st.st_mtime), st.st_size)
    assert marshal.loads(data[16:]).co_filename == name
