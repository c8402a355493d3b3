"""T: the hub's clock far in the past (no RTC, no network yet) or far in the future must not
change RAUC's verdict: system.conf has `use-bundle-signing-time=true`, so the signer
certificate is checked at the bundle's CMS signing time. Checked with the real rauc under
libfaketime, with and without the option (without it, the past clock breaks updates)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ota import keys
from tests.roles.tools import apt_install

CLOCKS = ["1990-01-01 00:00:00", "2200-01-01 00:00:00"]


def rauc_info(bundle: Path, keyring: Path, clock: str, tmp_path: Path,
              signing_time: bool) -> subprocess.CompletedProcess:
    conf = tmp_path / "system.conf"
    conf.write_text("[system]\ncompatible=clock-test\nbootloader=noop\n[keyring]\n"
                    f"path={keyring}\nuse-bundle-signing-time={str(signing_time).lower()}\n")
    return subprocess.run(["faketime", clock, "rauc", f"--conf={conf}", f"--mount={tmp_path}",
                           "info", bundle], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module", autouse=True)
def faketime() -> None:
    apt_install("faketime")


@pytest.mark.parametrize("clock", CLOCKS)
def test_signing_time_makes_the_clock_irrelevant(make_bundle, dev_keys: keys.KeyDir,
                                                 tmp_path: Path, clock: str) -> None:
    result = rauc_info(make_bundle(counter=4000), dev_keys.ca_cert, clock, tmp_path, True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("clock", CLOCKS)
def test_without_it_a_wrong_clock_refuses_good_bundles(make_bundle, dev_keys: keys.KeyDir,
                                                       tmp_path: Path, clock: str) -> None:
    result = rauc_info(make_bundle(counter=4000), dev_keys.ca_cert, clock, tmp_path, False)
    assert result.returncode != 0
    assert "not yet valid" in result.stderr or "expired" in result.stderr, result.stderr


def test_a_foreign_bundle_stays_refused_at_any_clock(make_bundle, dev_keys: keys.KeyDir,
                                                     other_keys: keys.KeyDir,
                                                     tmp_path: Path) -> None:
    foreign = make_bundle(counter=4001, signer=other_keys)
    for clock in CLOCKS:
        assert rauc_info(foreign, dev_keys.ca_cert, clock, tmp_path, True).returncode != 0
