"""Host tools for tests/roles, installed from Debian when missing (CI starts from a bare host)."""

from __future__ import annotations

import os
import subprocess

import pytest


def missing_packages(*packages: str) -> list[str]:
    return [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False
    ).stdout != "install ok installed"]


def apt_install(*packages: str) -> None:
    """Install the Debian packages that are missing; skip the test if we cannot (not root)."""
    missing = missing_packages(*packages)
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"needs {' '.join(missing)} (apt-get install as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}"
                               f"{result.stderr[-2000:]}")
