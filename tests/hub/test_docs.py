"""Documentation cannot drift: every hub setting is in hub/README.md with its default."""

from __future__ import annotations

from pathlib import Path

from hub.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_with_its_default():
    readme = (ROOT / "hub" / "README.md").read_text().split("## Settings", 1)[1]
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `")}
    missing = [s.name for s in SETTINGS if s.name not in rows]
    assert not missing, f"add these settings to hub/README.md: {missing}"
    for setting in SETTINGS:
        default = repr(setting.default).replace("'", '"')
        assert f"`{default}`" in rows[setting.name], f"{setting.name}: default {default} differs"
    stale = set(rows) - {s.name for s in SETTINGS}
    assert not stale, f"hub/README.md documents settings that do not exist: {stale}"
