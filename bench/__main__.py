"""`./build.sh bench`: run every bench/bench_*.py (or the ones named) one after another.

Each benchmark prints readable lines plus one JSON line per figure:
{"bench": ..., "value": ..., "unit": ..., "reference": ...}. This runner passes their output
through and ends with a table of all figures, so a run can be pasted into a closing note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))
    figures: list[dict] = []
    failed: list[str] = []
    for name in names:
        path = BENCH_DIR / f"bench_{name}.py"
        if not path.exists():
            print(f"[ERROR] no benchmark {path}", file=sys.stderr)
            return 2
        print(f"== {path.name}", flush=True)
        env = {**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)}
        proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True,
                                cwd=BENCH_DIR.parent, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("{"):
                try:
                    figure = json.loads(line)
                except ValueError:
                    continue
                if isinstance(figure, dict) and "bench" in figure:
                    figures.append(figure)
        if proc.wait():
            failed.append(path.name)
    print("\n== summary")
    for f in figures:
        ref = f.get("reference")
        ratio = f" (x{f['value'] / ref:.3g} of reference {ref})" if ref else ""
        print(f"{f['bench']:<40} {f['value']:>14.6g} {f['unit']}{ratio}")
    if failed:
        print(f"[ERROR] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
