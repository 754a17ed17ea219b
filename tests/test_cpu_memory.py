"""The glibc heap setting used by evaluate/train on CPU: applied once, and harmless to call again."""

from __future__ import annotations

import platform
import sys

import pytest

from cirbench.cpu_memory import keep_freed_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="needs glibc's mallopt (Linux with glibc)",
)
def test_thresholds_are_set_once_on_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
