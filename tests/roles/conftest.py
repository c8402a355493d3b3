"""Fixtures for tests/roles: the first-boot scripts of overlays/rootfs loaded as modules."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

LIBEXEC = Path(__file__).resolve().parents[2] / "overlays/rootfs/usr/libexec"


def load_script(name: str) -> ModuleType:
    """Import /usr/libexec/<name> (a Python script without .py) from the overlay."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(LIBEXEC / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def headless() -> ModuleType:
    return load_script("cydynni-headless-config")


@pytest.fixture(scope="session")
def firstboot() -> ModuleType:
    return load_script("cydynni-firstboot-secrets")
