"""Exceptions raised by the image builder; the CLI turns them into [ERROR] lines."""

from __future__ import annotations


class BuildError(Exception):
    """Base class for every image build failure."""


class ConfigError(BuildError):
    """build.conf or an override holds a value the build cannot use."""


class HostToolError(BuildError):
    """A host tool is missing and could not be installed."""


class StepFailed(BuildError):
    """A stage step exited non-zero."""

    def __init__(self, step: str, returncode: int, log_line: int) -> None:
        super().__init__(f"step {step} exited with {returncode} (build log line {log_line})")
        self.step = step
        self.returncode = returncode
        self.log_line = log_line


class MountLeft(BuildError):
    """Something is still mounted inside a directory the build wants to delete."""


class ImageTooSmall(BuildError):
    """The rootfs does not fit into the configured partition size."""
