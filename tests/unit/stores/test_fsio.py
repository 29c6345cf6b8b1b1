"""stores.fsio.AppendFile.append_synced: the group commit's write-and-sync, on real files."""

from __future__ import annotations

import os
from pathlib import Path

from stores import fsio


def test_append_synced_lands_every_byte_and_counts_it_synced(tmp_path: Path) -> None:
    f = fsio.open_append(tmp_path / "log")
    try:
        first = f.append_synced(b"a" * 1000)
        second = f.append_synced(b"b" * 70_000)  # more than one page
        assert (first, second) == (0, 1000)
        assert f.size == f.synced == 71_000
        assert f.read(0, 71_000) == b"a" * 1000 + b"b" * 70_000
    finally:
        f.close()
    assert os.path.getsize(tmp_path / "log") == 71_000


def test_append_synced_after_an_unsynced_append_syncs_that_too(tmp_path: Path) -> None:
    f = fsio.open_append(tmp_path / "log")
    try:
        f.append(b"unsynced")
        assert f.synced == 0
        assert f.append_synced(b"group") == len(b"unsynced")
        assert f.synced == f.size == len(b"unsyncedgroup")
        assert f.read(0, f.size) == b"unsyncedgroup"
    finally:
        f.close()


class Recording(fsio.AppendFile):
    """A seam replacing `append` and `sync` (as the fault layer does) must see both calls."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def append(self, data: bytes) -> int:
        self.calls.append("append")
        return super().append(data)

    def sync(self) -> None:
        self.calls.append("sync")
        super().sync()


def test_append_synced_goes_through_a_subclass_append_and_sync(tmp_path: Path) -> None:
    f = Recording(tmp_path / "log")
    try:
        assert f.append_synced(b"x" * 10) == 0
        assert f.calls == ["append", "sync"]
        assert f.synced == f.size == 10
    finally:
        f.close()
