"""Lock backend names -> implementations, imported lazily (as stores.registry does for stores)."""

from __future__ import annotations

import importlib
from pathlib import Path

from stores.lock.backend import LockBackend

LOCK_BACKENDS: dict[str, str] = {
    "shared-file": "stores.lock.sharedfile:SharedFileLock",
}


def create_lock(kind: str, data_dir: Path) -> LockBackend:
    """A backend for `data_dir`, holding nothing yet. KeyError names an unknown kind."""
    if kind not in LOCK_BACKENDS:
        raise KeyError(f"unknown lock backend {kind!r}; known: {', '.join(sorted(LOCK_BACKENDS))}")
    module_name, _, class_name = LOCK_BACKENDS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: LockBackend = cls(Path(data_dir))
    return backend
