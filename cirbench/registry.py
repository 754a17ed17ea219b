"""Name -> factory registries filled by decorators, package scanning and entry points.

One Registry serves codecs, metrics and models: a newcomer adds one file and registers by name.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cirbench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A lazily populated mapping from names to registered objects.

    Built-in entries come from importing every module of ``package``; third-party entries come
    from the entry-point group ``group`` (each entry point loads to the object to register, and
    its name is the registered name).
    """

    def __init__(self, kind: str, package: str, group: str) -> None:
        self.kind = kind
        self.package = package
        self.group = group
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()  # re-entrant: a module imported while loading may look the registry up
        self._plugin_errors: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (names are case-insensitive)."""

        def decorate(obj: T) -> T:
            key = name.lower()
            existing = self._entries.get(key)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[key] = obj
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:  # threads of one process (the build's overlapping workers) must not see a partial registry
            if self._loaded:
                return
            self._load_entries()
            self._loaded = True

    def _load_entries(self) -> None:
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name.lower() in self._entries:
                continue
            try:
                self._entries[ep.name.lower()] = ep.load()
            except (ImportError, AttributeError) as exc:
                self._plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"

    def get(self, name: str) -> T:
        """The object registered as ``name``; an UnknownNameError with suggestions otherwise."""
        self._load()
        key = name.lower()
        if key in self._entries:
            return self._entries[key]
        if name in self._plugin_errors:
            raise UnknownNameError(
                f"{self.kind} '{name}' comes from a plugin that failed to load: {self._plugin_errors[name]}"
            )
        close = difflib.get_close_matches(key, list(self._entries), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._entries))
        raise UnknownNameError(f"unknown {self.kind} '{name}'{hint} (known: {known})")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
