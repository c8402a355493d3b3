"""Two copies of the boot state: every way of losing one copy still gives the newest state
(corrupt, truncated, missing, a write torn at any byte), checked against files made and
read by the real U-Boot tools (mkenvimage, fw_printenv)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ota import bootenv


def mkenv(path: Path, values: dict[str, str]) -> bytes:
    source = path.with_suffix(".txt")
    source.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    subprocess.run(["mkenvimage", "-s", "0x4000", "-o", path, source], check=True)
    return path.read_bytes()


OLD = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "BOOT_SEQ": "1"}
NEW = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "BOOT_SEQ": "2"}


@pytest.fixture
def fat(tmp_path: Path) -> Path:
    directory = tmp_path / "fat"
    directory.mkdir()
    return directory


def test_format_agrees_with_mkenvimage_and_fw_printenv(fat: Path, tmp_path: Path) -> None:
    assert bootenv.parse(mkenv(tmp_path / "ref.env", NEW)) == NEW  # U-Boot's tool, our reader
    (fat / "rauc.env").write_bytes(bootenv.serialize(NEW))
    config = tmp_path / "fw_env.config"
    config.write_text(f"{fat / 'rauc.env'} 0x0000 0x4000\n")
    out = subprocess.run(["fw_printenv", "-c", config], capture_output=True, text=True,
                         check=True).stdout
    assert dict(line.split("=", 1) for line in out.splitlines()) == NEW


@pytest.mark.parametrize("damage", ["missing", "truncated", "bitflip", "zeros"])
@pytest.mark.parametrize("which", ["rauc.env", "rauc.env.b"])
def test_a_damaged_copy_never_wins(fat: Path, damage: str, which: str) -> None:
    for name in ("rauc.env", "rauc.env.b"):
        (fat / name).write_bytes(bootenv.serialize(NEW))
    target = fat / which
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:5000])
    elif damage == "bitflip":
        data = bytearray(target.read_bytes())
        data[10] ^= 0x20
        target.write_bytes(bytes(data))
    else:
        target.write_bytes(bytes(bootenv.ENV_SIZE))
    assert bootenv.state(fat)["BOOT_ORDER"] == "B A"
    assert "copied" in bootenv.repair(fat)
    assert (fat / "rauc.env").read_bytes() == (fat / "rauc.env.b").read_bytes()
    assert bootenv.state(fat) == NEW


@pytest.mark.parametrize("torn_copy", ["rauc.env.b", "rauc.env"])
def test_a_write_torn_at_any_point_gives_the_old_or_the_new_state(fat: Path,
                                                                  torn_copy: str) -> None:
    """U-Boot writes rauc.env.b, then rauc.env. Cut the power inside either write, at
    every 512-byte sector (a FAT write goes by sectors): the result is OLD or NEW."""
    old, new = bootenv.serialize(OLD), bootenv.serialize(NEW)
    for cut in range(0, bootenv.ENV_SIZE + 1, 512):
        (fat / "rauc.env").write_bytes(old)
        (fat / "rauc.env.b").write_bytes(old)
        if torn_copy == "rauc.env":
            (fat / "rauc.env.b").write_bytes(new)  # the first write completed
        (fat / torn_copy).write_bytes(new[:cut] + old[cut:])
        got = bootenv.state(fat)
        assert got in (OLD, NEW), (cut, got)
        if torn_copy == "rauc.env":
            assert got == NEW, cut  # the first copy already holds the new state


def test_a_linux_write_wins_the_tie(fat: Path) -> None:
    # RAUC (fw_setenv) rewrote rauc.env without stepping BOOT_SEQ: same seq, new content
    (fat / "rauc.env.b").write_bytes(bootenv.serialize(OLD))
    (fat / "rauc.env").write_bytes(bootenv.serialize({**NEW, "BOOT_SEQ": "1"}))
    assert bootenv.state(fat)["BOOT_ORDER"] == "B A"


def test_sequence_wraps_around(fat: Path) -> None:
    (fat / "rauc.env").write_bytes(bootenv.serialize({**OLD, "BOOT_SEQ": "2"}))
    (fat / "rauc.env.b").write_bytes(bootenv.serialize({**NEW, "BOOT_SEQ": "0"}))
    assert bootenv.state(fat)["BOOT_ORDER"] == "B A"  # 0 follows 2


def test_both_invalid_gives_the_defaults(fat: Path) -> None:
    (fat / "rauc.env").write_bytes(b"junk")
    assert bootenv.state(fat) == bootenv.DEFAULTS
    assert "defaults" in bootenv.repair(fat)
    assert bootenv.parse((fat / "rauc.env.b").read_bytes()) == bootenv.DEFAULTS
