"""The RAUC command line, as the agent uses it (the D-Bus service does the work)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ota.errors import OtaError


class RaucError(OtaError):
    """RAUC refused or failed; the message carries RAUC's own last lines."""

    @property
    def busy(self) -> bool:
        """RAUC's service is still working on another call (an install the agent started
        before it was killed goes on in the service)."""
        return "already processing a different method" in str(self).lower()


@dataclass(frozen=True)
class SlotStatus:
    booted: str  # bootname of the booted slot (A or B)
    primary: str | None  # bootname RAUC will boot next
    boot_good: dict[str, bool]  # bootname -> boot status good
    bundle_versions: dict[str, str]  # bootname -> version of the bundle installed there


class Rauc:
    def __init__(self, command: tuple[str, ...] = ("rauc",), timeout: float = 3600) -> None:
        self.command = command
        self.timeout = timeout

    def run(self, *args: str | Path) -> str:
        argv = [*self.command, *map(str, args)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RaucError(f"rauc {args[0]}: {exc}") from exc
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            raise RaucError(f"rauc {args[0]} failed: " + " | ".join(lines[-4:]))
        return done.stdout

    def status(self) -> SlotStatus:
        data = json.loads(self.run("status", "--detailed", "--output-format=json"))
        booted_slot = data.get("booted")
        good, versions, booted = {}, {}, booted_slot
        for entry in data.get("slots", []):
            for name, slot in entry.items():
                bootname = slot.get("bootname")
                if not bootname:
                    continue
                if name == booted_slot or booted_slot == bootname:
                    booted = bootname
                good[bootname] = slot.get("boot_status") == "good"
                bundle = (slot.get("slot_status") or {}).get("bundle") or {}
                if bundle.get("version"):
                    versions[bootname] = str(bundle["version"])
        return SlotStatus(str(booted), data.get("boot_primary") and _bootname(
            data, data["boot_primary"]), good, versions)

    def install(self, bundle: Path) -> str:
        return self.run("install", bundle)

    def info(self, bundle: Path, keyring: Path) -> dict:
        return json.loads(self.run(f"--keyring={keyring}", "info", "--output-format=json",
                                   bundle))

    def mark_good(self) -> None:
        self.run("status", "mark-good", "booted")

    def mark_bad(self) -> None:
        self.run("status", "mark-bad", "booted")


def _bootname(data: dict, slot_name: str) -> str | None:
    for entry in data.get("slots", []):
        if slot_name in entry:
            return entry[slot_name].get("bootname")
    return None


def system_compatible(system_conf: Path) -> str:
    match = re.search(r"(?m)^compatible=(.+)$", system_conf.read_text())
    if not match:
        raise RaucError(f"{system_conf} has no compatible=")
    return match.group(1).strip()
