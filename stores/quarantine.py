"""Quarantine: damaged bytes that recovery does not replay are copied here, never just dropped.

`<store dir>/quarantine/<file>@<offset>` holds the bytes of one damaged range exactly as found
(a torn tail, or a record that fails its checksum between intact ones), so that an operator or a
support engineer can look at them; nothing reads them back. `batonmq status` lists them
(broker/tools/status.py) until someone deletes them. Each store's FORMAT.md says which damage
is quarantined and which refuses to open instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stores import fsio

DIRECTORY = "quarantine"


@dataclass(frozen=True, slots=True)
class Quarantined:
    path: Path  # the copy
    size: int


def quarantine_name(file_name: str, offset: int) -> str:
    return f"{file_name}@{offset}"


def save(store_dir: Path, file_name: str, offset: int, data: bytes) -> Path:
    """Copy `data` (the bytes found at `file_name`@`offset`) durably; OSError if it cannot be."""
    directory = Path(store_dir) / DIRECTORY
    directory.mkdir(exist_ok=True)
    path = directory / quarantine_name(file_name, offset)
    fsio.write_atomically(path, data)  # the same range found again (a crash before the next
    return path                        # checkpoint) replaces its copy with identical bytes


def listing(data_dir: Path) -> list[Quarantined]:
    """Every quarantined range under any store directory of `data_dir`, by path."""
    found = []
    for store in sorted(Path(data_dir).iterdir()) if Path(data_dir).is_dir() else ():
        directory = store / DIRECTORY
        if not directory.is_dir() or store.is_symlink():
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".tmp"):
                    found.append(Quarantined(Path(entry.path), entry.stat(follow_symlinks=False).st_size))
    return sorted(found, key=lambda q: str(q.path))
