"""Every path rule of the journal store (FORMAT.md section 1) in one place."""

from __future__ import annotations

import re
from pathlib import Path

_DATA = re.compile(r"db-([1-9][0-9]{0,17})\.log")
_CHECKPOINT = re.compile(r"checkpoint-(0|[1-9][0-9]{0,18})")


def data_name(number: int) -> str:
    return f"db-{number}.log"


def data_path(directory: Path, number: int) -> Path:
    return directory / data_name(number)


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"checkpoint-{epoch}"


def data_files(directory: Path) -> dict[int, Path]:
    """Data file number → path, in increasing number."""
    found = {}
    for path in directory.iterdir():
        match = _DATA.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def checkpoints(directory: Path) -> dict[int, Path]:
    """Checkpoint epoch → path, in increasing epoch."""
    found = {}
    for path in directory.iterdir():
        match = _CHECKPOINT.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def leftovers(directory: Path) -> list[Path]:
    """Temporary files of an interrupted `write_atomically`."""
    return [p for p in directory.iterdir() if p.name.startswith("checkpoint-") and p.name.endswith(".tmp")]
