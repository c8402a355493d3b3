"""Resumable, bounded download of one artifact onto /data.

Bounded: never more bytes than the deployment announced (an endless or padded body is cut
off and refused at once, without a retry), free space checked first, connect/read
timeouts, a minimum average throughput over a window (a slow drip is dropped), an overall
deadline and a limited number of attempts. Resumable: the partial file is kept and the
next attempt asks for the rest with an HTTP Range request; a server that ignores Range
restarts it. The hash is checked over the whole file at the end, resumed or not.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ota.agent.config import Limits
from ota.errors import OtaError

CHUNK = 64 * 1024
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(OtaError):
    """The artifact could not be fetched within the limits, or its hash is wrong."""


class Overlong(DownloadError):
    """The server announced or sent more bytes than the deployment said. A misbehaving or
    hostile server, not a flaky link: refused at once, never retried. (A retry would ask
    for a range past the end and report the server's 416 instead of the real cause.)"""


class Cancelled(OtaError):
    """The server (or the admin) cancelled the deployment while it downloaded."""


def file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _one_attempt(url: str, partial: Path, size: int, headers: dict[str, str], limits: Limits,
                 progress: Callable[[int, int], None], should_stop: Callable[[], bool],
                 deadline: float) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        have = 0
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=request_headers)
    with urllib.request.urlopen(req, timeout=limits.read_timeout) as resp:
        if have and resp.status == 206:
            match = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise DownloadError("server answered a Range request with another range")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # 200: the server sent the whole file again
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and have + int(length) > size:
            raise Overlong(f"server announces {have + int(length)} bytes, the deployment "
                           f"says {size}: refused")
        window_start, window_bytes = time.monotonic(), 0
        with partial.open(mode) as out:
            while True:
                if should_stop():
                    raise Cancelled("deployment cancelled during the download")
                chunk = resp.read1(min(CHUNK, size - have + 1))
                if not chunk:
                    break
                if have + len(chunk) > size:
                    raise Overlong(f"server sent more than the announced {size} bytes")
                out.write(chunk)
                have += len(chunk)
                window_bytes += len(chunk)
                progress(have, size)
                now = time.monotonic()
                if now > deadline:
                    raise DownloadError("download deadline passed")
                if now - window_start >= limits.rate_window:
                    rate = window_bytes / (now - window_start)
                    if rate < limits.min_rate_bytes:
                        raise DownloadError(f"too slow: {rate:.0f} B/s over "
                                            f"{limits.rate_window:.0f} s")
                    window_start, window_bytes = now, 0
            out.flush()
            os.fsync(out.fileno())


def fetch(url: str, dest: Path, *, size: int, hashes: dict[str, str], headers: dict[str, str],
          limits: Limits, progress: Callable[[int, int], None] = lambda have, size: None,
          should_stop: Callable[[], bool] = lambda: False,
          sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Download to `dest` (atomically renamed from dest.partial when complete and checked).
    Returns notes worth reporting (retries, which hash was checked)."""
    if size > limits.max_bundle_bytes:
        raise DownloadError(f"{size} bytes exceeds the cap of {limits.max_bundle_bytes}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    free = shutil.disk_usage(dest.parent).free
    if free < size - have + limits.free_space_margin:
        raise DownloadError(f"not enough space on {dest.parent}: {free} bytes free, "
                            f"{size - have} needed plus a margin")
    notes: list[str] = []
    deadline = time.monotonic() + limits.deadline
    for attempt in range(1, limits.attempts + 1):
        try:
            _one_attempt(url, partial, size, headers, limits, progress, should_stop, deadline)
        except Cancelled:
            raise
        except Overlong:
            partial.unlink(missing_ok=True)
            raise
        except (DownloadError, urllib.error.URLError, OSError, TimeoutError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403, 404):
                raise DownloadError(f"download refused: HTTP {exc.code}") from exc
            notes.append(f"attempt {attempt}: {exc}")
            if time.monotonic() > deadline or attempt == limits.attempts:
                raise DownloadError(f"download failed after {attempt} attempts: {exc}") from exc
            sleep(min(60.0, 2.0 ** attempt))
            continue
        have = partial.stat().st_size
        if have == size:
            break
        notes.append(f"attempt {attempt}: connection ended at {have} of {size} bytes")
        if attempt == limits.attempts:
            raise DownloadError(f"download incomplete after {attempt} attempts")
        sleep(min(60.0, 2.0 ** attempt))
    algorithm = "sha256" if "sha256" in hashes else "sha1"
    got = file_hash(partial, algorithm)
    if got != hashes[algorithm]:
        partial.unlink()
        raise DownloadError(f"{algorithm} mismatch: the file is not the announced artifact")
    os.replace(partial, dest)
    notes.append(f"{algorithm} verified" + ("" if algorithm == "sha256" else
                 " (the server gave no sha256; RAUC's signature check still follows)"))
    return notes
