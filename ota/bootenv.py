"""The A/B boot state on the boot FAT, kept twice so a power cut during a write cannot lose it.

Files: `rauc.env` (the copy Linux reads and writes: /etc/fw_env.config, so RAUC's fw_setenv
goes there) and `rauc.env.b`. Each is a plain binary U-Boot environment (0x4000 bytes:
CRC32 little-endian, then NAME=value\\0 ... \\0\\0) holding BOOT_ORDER, BOOT_A_LEFT,
BOOT_B_LEFT and BOOT_SEQ.

Rule (the same in boot.cmd and here): a copy counts only if its CRC is right. BOOT_SEQ is
0, 1 or 2 and goes up by one (mod 3) with every U-Boot write; both copies are always
written, so they differ by at most one step. `rauc.env.b` wins only if it is exactly one
step ahead of a valid `rauc.env`, or `rauc.env` is invalid; otherwise `rauc.env` wins (so
a Linux write, which does not step BOOT_SEQ, wins the tie). U-Boot writes `rauc.env.b`
first and `rauc.env` last: a cut during either write leaves the other copy valid.

`python3 -m ota.bootenv repair` (cydynni-bootenv.service, early at boot) copies the winner
over a corrupt or stale loser, so Linux and RAUC always read the state U-Boot used.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

ENV_SIZE = 0x4000
PRIMARY, SECONDARY = "rauc.env", "rauc.env.b"
DEFAULTS = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "BOOT_SEQ": "0"}


@dataclass(frozen=True)
class Copy:
    name: str
    raw: bytes | None
    values: dict[str, str] | None  # None: missing, truncated or bad CRC

    @property
    def seq(self) -> int:
        text = (self.values or {}).get("BOOT_SEQ", "0")
        return int(text) if text in ("0", "1", "2") else 0


def parse(raw: bytes | None) -> dict[str, str] | None:
    if raw is None or len(raw) != ENV_SIZE:
        return None
    (crc,) = struct.unpack("<I", raw[:4])
    if zlib.crc32(raw[4:]) != crc:
        return None
    values = {}
    for entry in raw[4:].split(b"\0"):
        if not entry:
            break
        name, sep, value = entry.partition(b"=")
        if not sep:
            return None
        values[name.decode(errors="replace")] = value.decode(errors="replace")
    return values


def serialize(values: dict[str, str]) -> bytes:
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in sorted(values.items())) + b"\0"
    if len(body) > ENV_SIZE - 4:
        raise ValueError("environment too large")
    body = body.ljust(ENV_SIZE - 4, b"\0")
    return struct.pack("<I", zlib.crc32(body)) + body


def read(directory: Path) -> tuple[Copy, Copy]:
    copies = []
    for name in (PRIMARY, SECONDARY):
        try:
            raw = (directory / name).read_bytes()
        except OSError:
            raw = None
        copies.append(Copy(name, raw, parse(raw)))
    return copies[0], copies[1]


def choose(primary: Copy, secondary: Copy) -> Copy | None:
    """The copy U-Boot boots from; None when neither is valid (U-Boot then uses DEFAULTS)."""
    if primary.values is None:
        return secondary if secondary.values is not None else None
    if secondary.values is not None and secondary.seq == (primary.seq + 1) % 3:
        return secondary
    return primary


def state(directory: Path) -> dict[str, str]:
    winner = choose(*read(directory))
    return dict(DEFAULTS) if winner is None else {**DEFAULTS, **winner.values}


def _write_in_place(path: Path, data: bytes) -> None:
    """Overwrite in place and fsync (FAT: no atomic rename; the other copy covers a cut)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def repair(directory: Path) -> str:
    """Make both copies hold the winning state; returns what was done."""
    primary, secondary = read(directory)
    winner = choose(primary, secondary)
    if winner is None:
        data = serialize(DEFAULTS)
        _write_in_place(directory / SECONDARY, data)
        _write_in_place(directory / PRIMARY, data)
        return "both copies invalid: wrote the defaults (U-Boot used them too)"
    loser = secondary if winner is primary else primary
    if loser.raw == winner.raw:
        return "both copies agree"
    _write_in_place(directory / loser.name, winner.raw)
    return f"{loser.name} {'invalid' if loser.values is None else 'stale'}: copied {winner.name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ota.bootenv", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["show", "repair"])
    parser.add_argument("--dir", type=Path, default=Path("/boot/firmware"))
    args = parser.parse_args(argv)
    if args.command == "show":
        print(json.dumps(state(args.dir), sort_keys=True))
    else:
        print(f"cydynni-bootenv: {repair(args.dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
