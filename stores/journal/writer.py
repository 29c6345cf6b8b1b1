"""The current data file: append, undo a failed append, sync, rotate (FORMAT.md sections 1-2).

Only the store's writer thread uses a Writer. Every byte goes through `stores.fsio.open_append`
so fault-injection tests see it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from stores import fsio
from stores.base import StoreClosed
from stores.journal.layout import data_name, data_path
from stores.journal.records import Seal, encode_seal

log = logging.getLogger(__name__)


class Writer:
    def __init__(self, directory: Path, epoch: int) -> None:
        self.directory = directory
        self.epoch = epoch
        self.number = 0  # current data file
        self.ends: dict[int, int] = {}  # every other existing data file → its honoured end
        self._file: fsio.AppendFile | None = None
        self._undo_to: int | None = None  # a truncate that failed and must be retried

    @property
    def file(self) -> fsio.AppendFile:
        if self._file is None:
            raise StoreClosed("journal writer is closed")
        return self._file

    @property
    def size(self) -> int:
        return self.file.size

    def start(self, number: int, ends: dict[int, int]) -> None:
        """Create `db-<number>.log` (exclusively) with its SEAL, fsync'd with the directory."""
        path = data_path(self.directory, number)
        try:
            # O_EXCL: a master that finds its next file taken has been superseded (FORMAT.md 1).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        except FileExistsError:
            raise StoreClosed(f"{data_name(number)} already exists: another master writes here") from None
        new: fsio.AppendFile | None = None
        try:
            new = fsio.open_append(path)
            new.append(encode_seal(Seal(self.epoch, number, ends)))
            new.sync()
            fsio.sync_directory(self.directory)
        except OSError:
            if new is not None:
                new.close()
            path.unlink(missing_ok=True)
            raise
        if self._file is not None:
            self._file.close()
        self._file, self.number, self.ends, self._undo_to = new, number, dict(ends), None
        log.debug("journal: writing %s (epoch %d)", path, self.epoch)

    def rotate(self) -> None:
        # The old tail is made durable first: the new SEAL names its end as honoured.
        self.repair()
        self.file.sync()
        self.start(self.number + 1, {**self.ends, self.number: self.file.size})

    def append(self, data: bytes) -> int:
        """Append; on OSError cut the file back so no half-written bytes precede later records."""
        self.repair()
        start = self.file.size
        try:
            self.file.append(data)
        except OSError:
            self.undo(start)
            raise
        return start

    def append_synced(self, data: bytes) -> int:
        """`append` and `sync_or_undo` in one: on OSError nothing from here on is kept."""
        self.repair()
        start = self.file.size
        try:
            self.file.append_synced(data)
        except OSError:
            self.undo(start)
            raise
        return start

    def sync_or_undo(self, start: int) -> None:
        """fsync; if it fails, drop everything from `start` on (its durability is unknown)."""
        try:
            self.file.sync()
        except OSError:
            self.undo(start)
            raise

    def undo(self, start: int) -> None:
        try:
            self.file.truncate(start)
            self._undo_to = None
        except OSError as exc:
            log.warning("journal: cannot truncate %s back to %d yet: %s", data_name(self.number), start, exc)
            self._undo_to = start

    def repair(self) -> None:
        """Retry a failed undo; raises OSError while the condition lasts."""
        if self._undo_to is not None:
            self.file.truncate(self._undo_to)
            self._undo_to = None

    def sync(self) -> None:
        if self._file is not None:
            self.repair()
            self._file.sync()

    def read(self, offset: int, length: int) -> bytes:
        return self.file.read(offset, length)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
