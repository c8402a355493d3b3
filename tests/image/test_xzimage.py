"""image/xzimage.py writes .xz files every decoder reads, byte for byte the same each time."""

from __future__ import annotations

import lzma
import os
import subprocess
from pathlib import Path

import pytest

from image import xzimage
from image.errors import ConfigError

MIB = 1 << 20


def sparse_image(path: Path) -> bytes:
    """Data, a hole, zeros written as data, text, a short tail: like a small disk image."""
    with path.open("wb") as handle:
        handle.write(os.urandom(3 * MIB))
        handle.seek(13 * MIB)
        handle.write(bytes(5 * MIB))
        handle.write(Path(xzimage.__file__).read_bytes() * 200)
        handle.write(b"tail")
    return path.read_bytes()


@pytest.mark.parametrize("options", ["-T0 -0", "-T2 -3", "-6 -e", "-1 -T 1"])
def test_every_decoder_reads_it_back(tmp_path: Path, options: str) -> None:
    source, out = tmp_path / "disk.img", tmp_path / "disk.img.xz"
    data = sparse_image(source)
    xzimage.compress_file(source, out, xzimage.parse_options(options))
    assert lzma.decompress(out.read_bytes()) == data
    subprocess.run(["xz", "--test", str(out)], check=True)
    unpacked = subprocess.run(["xz", "-dc", str(out)], check=True, capture_output=True).stdout
    assert unpacked == data
    listed = subprocess.run(["xz", "--robot", "--list", str(out)], check=True,
                            capture_output=True, text=True).stdout
    totals = next(line.split("\t") for line in listed.splitlines() if line.startswith("totals"))
    assert int(totals[4]) == len(data)
    assert totals[1] == "1", "one stream, as xz -T writes"
    block_size = xzimage.parse_options(options).block_size
    assert int(totals[2]) == -(-len(data) // block_size), "independent blocks, as xz -T writes"


def test_same_input_same_bytes_and_zeros_cost_nothing(tmp_path: Path) -> None:
    source = tmp_path / "disk.img"
    sparse_image(source)
    first, second = tmp_path / "a.xz", tmp_path / "b.xz"
    xzimage.compress_file(source, first, xzimage.parse_options("-T2 -0"))
    xzimage.compress_file(source, second, xzimage.parse_options("-T1 -0"))
    assert first.read_bytes() == second.read_bytes()
    empty = tmp_path / "empty.img"
    with empty.open("wb") as handle:
        handle.truncate(256 * MIB)
    xzimage.compress_file(empty, tmp_path / "empty.xz", xzimage.parse_options("-0"))
    assert (tmp_path / "empty.xz").stat().st_size < 64 * 1024
    assert lzma.decompress((tmp_path / "empty.xz").read_bytes()) == bytes(256 * MIB)


@pytest.mark.parametrize("bad", ["-T0 --fast", "-T", "-T x", "-z", "--format=lzma"])
def test_options_xz_would_take_but_we_do_not_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="XZ_OPTS"):
        xzimage.parse_options(bad)


def test_options() -> None:
    assert xzimage.parse_options("-T0 -3").preset == 3
    assert xzimage.parse_options("-T 3 -0").threads == 3
    assert xzimage.parse_options("-6 -e").preset == 6 | lzma.PRESET_EXTREME
    assert xzimage.parse_options("-9").block_size == 3 * 64 * MIB
