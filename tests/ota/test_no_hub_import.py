"""The update agent must work when the hub is broken, so no module of ota/ imports hub/:
checked on the source (every import statement) and at run time (sys.modules)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_ota_module_imports_the_hub() -> None:
    offenders = {str(p.relative_to(REPO)): sorted(n for n in imported_names(p)
                                                  if n == "hub" or n.startswith("hub."))
                 for p in (REPO / "ota").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_agent_runs_with_the_hub_unimportable(tmp_path: Path) -> None:
    # A "hub" package that explodes on import, first on the path: the agent must not care.
    broken = tmp_path / "hub"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('the hub is broken')\n")
    code = ("import sys; import ota.agent.__main__, ota.agent.core, ota.floor; "
            "assert not [m for m in sys.modules if m == 'hub' or m.startswith('hub.')]")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}"}, check=False)
    assert result.returncode == 0, result.stderr
    status = subprocess.run([sys.executable, "-m", "ota.agent", "status", "--config",
                             tmp_path / "agent.json"], cwd=REPO, capture_output=True, text=True,
                            env={"PYTHONPATH": f"{tmp_path}:{REPO}"}, check=False)
    assert status.returncode == 0, status.stderr
