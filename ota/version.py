"""Versions of OTA bundles.

A bundle carries two numbers: the display version of the image (IMG_VERSION, e.g.
20261126-g1a2b3c4) and a build counter that only ever goes up (UTC minute of the build,
YYYYMMDDHHMM, unless OTA_BUILD_COUNTER says otherwise). RAUC compares versions as semver,
so the RAUC `version` is `<counter>.0.0+<display>`: the counter decides the order
(min-bundle-version, our pre-install floor), the display version rides along as build
metadata. goosebit parses the same string with semver.
"""

from __future__ import annotations

import re
import time

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:\+([0-9A-Za-z.-]+))?")
MAX_COUNTER = 10**15


class VersionError(ValueError):
    """A version string that is not one of ours."""


def default_counter() -> int:
    """The build counter when none is given: the UTC minute, which only goes up."""
    return int(time.strftime("%Y%m%d%H%M", time.gmtime()))


def build_metadata(display: str) -> str:
    """semver build metadata allows [0-9A-Za-z-] in dot-separated parts."""
    cleaned = re.sub(r"[^0-9A-Za-z.-]", "-", display).strip(".")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned or "unversioned"


def rauc_version(counter: int, display: str) -> str:
    if not 0 < counter < MAX_COUNTER:
        raise VersionError(f"build counter {counter} out of range 1..{MAX_COUNTER - 1}")
    return f"{counter}.0.0+{build_metadata(display)}"


def counter_of(version: str) -> int:
    """The build counter of a bundle version; VersionError for anything else."""
    match = _SEMVER.fullmatch(version.strip())
    if not match:
        raise VersionError(f"not a bundle version: {version[:80]!r}")
    counter = int(match.group(1))
    if not 0 < counter < MAX_COUNTER:
        raise VersionError(f"build counter out of range in {version[:80]!r}")
    return counter


def display_of(version: str) -> str:
    match = _SEMVER.fullmatch(version.strip())
    return (match.group(4) or "") if match else ""
