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


def _table_paths(readme: str, heading: str) -> set[str]:
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    return {cell.strip("`").rstrip("/") for line in section.splitlines()
            if line.startswith("| `") for cell in line.split("|")[1].replace(",", " ").split()}


def test_every_part_of_hub_is_in_the_readme_map():
    listed = _table_paths((ROOT / "hub" / "README.md").read_text(), "## Where things are")
    parts = {p.name.removesuffix(".py") if p.suffix == ".py" else p.name
             for p in (ROOT / "hub").iterdir()
             if p.name not in ("__init__.py", "__main__.py", "README.md", "__pycache__")}
    listed = {name.removesuffix(".py") for name in listed}
    assert parts - listed == set(), f"add to hub/README.md's map: {sorted(parts - listed)}"
    assert listed - parts == set(), f"hub/README.md maps what is gone: {sorted(listed - parts)}"


def test_every_device_module_is_in_the_device_readme():
    readme = (ROOT / "hub" / "device" / "README.md").read_text()
    for folder in ("hub/device", "hub/worker/device"):
        for path in (ROOT / folder).glob("*.py"):
            if path.name != "__init__.py":
                assert f"`{path.name}`" in readme, f"{folder}/{path.name} is not in its README"


def test_the_readme_names_csv_inputs_as_the_parser_does():
    from hub.input.readings import parse_mqtt

    names = list(parse_mqtt("emon/n", b"12,13", now=1_700_000_000)[0].values)
    row = next(line for line in (ROOT / "hub" / "README.md").read_text().splitlines()
               if line.startswith("| `emon/<node>` |"))
    assert f"inputs `{names[0]}`, `{names[1]}`" in row
