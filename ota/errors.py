"""Errors of the OTA tooling and agent: each one says what failed in words a person can act on."""

from __future__ import annotations


class OtaError(Exception):
    """Base class of every OTA failure."""


class ToolMissing(OtaError):
    """A host tool (openssl, rauc, mksquashfs ...) is not installed."""


class BundleError(OtaError):
    """A bundle could not be built, or was refused when checked."""


class ServerError(OtaError):
    """The fleet server answered with an error or something we cannot use."""
