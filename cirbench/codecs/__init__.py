"""Codec adapters, one module each, registered by name in CODECS (entry-point group ``cirbench.codecs``).

``create_codec("hevc", qp=37)`` builds a configured codec; third parties register through entry points.
"""

from __future__ import annotations

from typing import Any

from cirbench.codecs._base import Codec, Encoded, RoundTrip, pad_edge
from cirbench.registry import Registry

CODECS: Registry[type[Codec]] = Registry("codec", package="cirbench.codecs", group="cirbench.codecs")


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: register a Codec subclass under its ``name``."""
    return CODECS.register(cls.name)(cls)


def create_codec(name: str, **options: Any) -> Codec:
    """A configured codec instance; UnknownNameError or ConfigError on bad input."""
    return CODECS.get(name)(**options)


__all__ = ["CODECS", "Codec", "Encoded", "RoundTrip", "create_codec", "pad_edge", "register_codec"]
