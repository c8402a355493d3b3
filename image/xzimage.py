"""xz for a mostly empty disk image: one ordinary .xz stream, as `xz -T` writes it (independent
LZMA2 blocks, each with its sizes in its header, and an index), in which every block of
zeros is compressed once and its bytes reused, and blocks in holes of the file are not even
read. Three quarters of the 3.5 GiB SD image are
zeros (slot B, the free part of slot A, the FAT's and data partition's free space): `xz`
would compress them all over again, ~3 s per GiB on two cores.

Same input and options give the same bytes (LZMA2 is deterministic; blocks are written in
order whatever the thread timing). Any xz decoder reads it (`xz -t`, `xz --list`, Python's
lzma, bmaptool); the check is CRC32 (`xz --check=crc32`).
Format: https://tukaani.org/xz/xz-file-format.txt (Stream, Block, Index).
"""

from __future__ import annotations

import lzma
import os
import shlex
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from image.errors import ConfigError

MAGIC = b"\xfd7zXZ\x00"
FOOTER_MAGIC = b"YZ"
CHECK_CRC32 = 0x01
FILTER_LZMA2 = 0x21
MIB = 1 << 20
# LZMA2 dictionary per preset (xz(1)); xz -T makes blocks of 3 x the dictionary.
DICT_SIZES = [256 << 10, 1 * MIB, 2 * MIB, 4 * MIB, 4 * MIB, 8 * MIB, 8 * MIB, 16 * MIB,
              32 * MIB, 64 * MIB]


@dataclass(frozen=True)
class XzOptions:
    preset: int
    threads: int

    @property
    def block_size(self) -> int:
        return max(3 * DICT_SIZES[self.preset & 0xF], 4 * MIB)


def parse_options(text: str) -> XzOptions:
    """The subset of xz's options XZ_OPTS may hold: -0 … -9, -e/--extreme, -T N/-TN."""
    preset, threads, extreme = 6, 1, False
    words = shlex.split(text)
    while words:
        word = words.pop(0)
        if len(word) == 2 and word[0] == "-" and word[1].isdigit():
            preset = int(word[1])
        elif word in ("-e", "--extreme"):
            extreme = True
        elif word.startswith(("-T", "--threads")):
            value = word.removeprefix("--threads").removeprefix("-T").removeprefix("=")
            if not value and words:
                value = words.pop(0)
            if not value.isdigit():
                raise ConfigError(f"XZ_OPTS={text!r}: -T needs a number")
            threads = int(value) or (os.cpu_count() or 1)
        else:
            raise ConfigError(f"XZ_OPTS={text!r}: only -0 … -9, -e and -T N are understood")
    return XzOptions(preset | (lzma.PRESET_EXTREME if extreme else 0), threads)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _pad4(length: int) -> bytes:
    return b"\x00" * (-length % 4)


def _crc32(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def _stream_flags() -> bytes:
    return bytes([0x00, CHECK_CRC32])


def _dict_property(preset: int) -> bytes:
    """LZMA2's one property byte: the dictionary size as (2 | p & 1) << (p // 2 + 11)."""
    wanted = DICT_SIZES[preset & 0xF]
    return bytes([next(p for p in range(41) if (2 | p & 1) << (p // 2 + 11) >= wanted)])


def compress_block(data: bytes, preset: int) -> tuple[bytes, int]:
    """One xz Block (header, LZMA2 data, padding, CRC32 of `data`) and its unpadded size."""
    payload = lzma.compress(data, format=lzma.FORMAT_RAW,
                            filters=[{"id": lzma.FILTER_LZMA2, "preset": preset}])
    properties = _dict_property(preset)
    # flags: one filter (0), compressed size (0x40) and uncompressed size (0x80) present
    body = bytes([0xC0]) + _varint(len(payload)) + _varint(len(data)) + \
        _varint(FILTER_LZMA2) + _varint(len(properties)) + properties
    size = 1 + len(body)
    header_size = size + (-size % 4) + 4
    header = bytes([header_size // 4 - 1]) + body + _pad4(size)
    header += _crc32(header)
    block = header + payload + _pad4(len(payload)) + _crc32(data)
    return block, header_size + len(payload) + 4


def _in_hole(fd: int, start: int, length: int) -> bool:
    """True if [start, start + length) holds no data extent (SEEK_DATA)."""
    try:
        return os.lseek(fd, start, os.SEEK_DATA) >= start + length
    except OSError:  # ENXIO: no data after start
        return True


def _blocks(source: Path, block_size: int) -> Iterator[bytes | int]:
    """Each block's bytes, or just its length when it lies in a hole of the file: holes are
    never read (reading the ~2.7 GiB of holes of a fresh image costs ~30 s of system time
    on this host kind, for zeros)."""
    total = source.stat().st_size
    with source.open("rb") as handle:
        for start in range(0, total, block_size):
            length = min(block_size, total - start)
            if _in_hole(handle.fileno(), start, length):
                yield length
                continue
            handle.seek(start)
            yield handle.read(length)


def compress_file(source: Path, out: Path, options: XzOptions) -> None:
    """Write `source` as one .xz stream to `out`; blocks of zeros are compressed once."""
    preset, size = options.preset, options.block_size
    zeros = bytes(size)
    zero_blocks: dict[int, tuple[bytes, int]] = {}
    records: list[tuple[int, int]] = []  # (unpadded size, uncompressed size) per block
    pending: deque[tuple[Future[tuple[bytes, int]] | tuple[bytes, int], int]] = deque()
    with ThreadPoolExecutor(max_workers=options.threads) as pool, out.open("wb") as sink:
        sink.write(MAGIC + _stream_flags() + _crc32(_stream_flags()))

        def write_oldest() -> None:
            result, length = pending.popleft()
            block, unpadded = result.result() if isinstance(result, Future) else result
            sink.write(block)
            records.append((unpadded, length))

        for data in _blocks(source, size):
            if isinstance(data, int) or data == zeros[: len(data)]:
                length = data if isinstance(data, int) else len(data)
                if length not in zero_blocks:
                    zero_blocks[length] = compress_block(zeros[:length], preset)
                pending.append((zero_blocks[length], length))
            else:
                pending.append((pool.submit(compress_block, data, preset), len(data)))
            while len(pending) > 2 * options.threads:
                write_oldest()
        while pending:
            write_oldest()
        index = b"\x00" + _varint(len(records)) + \
            b"".join(_varint(unpadded) + _varint(length) for unpadded, length in records)
        index += _pad4(len(index))
        index += _crc32(index)
        sink.write(index)
        backward = struct.pack("<I", len(index) // 4 - 1)
        sink.write(_crc32(backward + _stream_flags()) + backward + _stream_flags() + FOOTER_MAGIC)
