"""Bench (issue 12): the image build's and the QEMU boot's figures, from their own runs.

A build and a boot take minutes and need root, loop-free disk images and QEMU, so this
bench does not start them: it reports what the last runs recorded in DEPLOY_DIR (default
deploy/):
- build-durations.json, written by every `./build.sh` (seconds per stage and step). A build
  that restored the stage cache (a hub-only change) has "stage-cache-restore"; a clean build
  has a long 00-bootstrap (mmdebstrap without its cache).
- boot-test.json, written by tests/image/test_boot_qemu.py: seconds from QEMU's start to
  /health.json green, first boot and a later boot (power off, power on).
- boot-analyze-first.txt / -later.txt from the same test: `systemd-analyze time`, whose
  kernel time is the reference measured in the same boot.

Goals: clean build <= 600 s, hub-only rebuild <= 120 s, first boot <= 60 s, later <= 45 s.

    .venv/bin/python bench/bench_image.py
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = Path(os.environ.get("DEPLOY_DIR", ROOT / "deploy"))
KERNEL_TIME = re.compile(r"Startup finished in ([\d.]+)s \(kernel\)")


def emit(bench: str, value: float, unit: str, reference: float | None) -> None:
    print(json.dumps({"bench": bench, "value": value, "unit": unit, "reference": reference}))


def kernel_seconds(analysis: Path) -> float | None:
    """The kernel's part of that boot, from systemd-analyze (a reference from the same boot)."""
    if not analysis.is_file():
        return None
    found = KERNEL_TIME.search(analysis.read_text())
    return float(found.group(1)) if found else None


def build_figures() -> None:
    durations_file = DEPLOY / "build-durations.json"
    if not durations_file.is_file():
        print(f"[build] no {durations_file}: run ./build.sh first")
        return
    durations = json.loads(durations_file.read_text())
    total = durations["total"]
    bootstrap = durations.get("stage-scripts/00-bootstrap", 0.0)
    export = durations.get("stage-scripts/50-export", 0.0)
    if "stage-cache-restore" in durations:
        kind, goal = "build_rebuild_from_stage_cache", 120
    elif bootstrap > 60:
        kind, goal = "build_clean", 600
    else:
        kind, goal = "build_bootstrap_cached", None
    print(f"[build] {kind}: {total:.1f} s (goal {goal or '-'} s); bootstrap {bootstrap:.1f} s, "
          f"export {export:.1f} s; stages in {durations_file}")
    # Reference: the export, the part every kind of build runs in full.
    emit(kind, total, "s", export)


def boot_figures() -> None:
    report = DEPLOY / "boot-test.json"
    if not report.is_file():
        print(f"[boot] no {report}: run pytest -s tests/image/test_boot_qemu.py first")
        return
    figures = json.loads(report.read_text())
    for which, goal in (("first", 60), ("later", 45)):
        seconds = figures.get(f"{which}_boot_to_hub_ready_s")
        if seconds is None:
            continue
        kernel = kernel_seconds(DEPLOY / f"boot-analyze-{which}.txt")
        print(f"[boot] {which} boot: hub ready {seconds:.1f} s after QEMU started (goal {goal} s);"
              f" kernel {kernel} s of it")
        emit(f"boot_{which}_to_hub_ready", seconds, "s", kernel)


def main() -> int:
    build_figures()
    boot_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
