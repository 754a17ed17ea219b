"""Typed errors raised by cirbench library code.

Only the CLI turns these into messages and exit codes; library code never exits.
"""

from __future__ import annotations


class CirbenchError(Exception):
    """Base class of every error cirbench raises on purpose."""


class SourceImageError(CirbenchError):
    """A source image cannot be used: unreadable, wrong mode, too small or too large."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.reason))


class SourceSetError(CirbenchError):
    """A source folder or canonical source set is missing or malformed."""


class CodecError(CirbenchError):
    """An encoder or decoder failed on an input it should handle."""


class CodecUnavailable(CirbenchError):
    """A codec cannot run on this machine (missing tool, library or weights)."""

    def __init__(self, codec: str, reason: str, remedy: str = "") -> None:
        text = f"codec '{codec}' is unavailable: {reason}"
        if remedy:
            text += f" ({remedy})"
        super().__init__(text)
        self.codec = codec
        self.reason = reason
        self.remedy = remedy

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.codec, self.reason, self.remedy))


class UnknownNameError(CirbenchError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(CirbenchError):
    """A task set or configuration file is malformed."""


class ManifestError(CirbenchError):
    """A dataset manifest is missing, corrupt or does not match its schema."""


class OutputError(CirbenchError):
    """An output location cannot be written."""
