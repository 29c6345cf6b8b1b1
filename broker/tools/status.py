"""`batonmq status`: who is master of a data directory, read without disturbing anything.

The lock file keeps the last holder's identity after that holder stops or dies, so the identity
alone does not say whether there is a master: the backend's `is_held()` also asks (for the
shared-file backend, the kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stores.lock.identity import Holder
from stores.lock.registry import create_lock
from stores.quarantine import Quarantined, listing


@dataclass(frozen=True, slots=True)
class Status:
    data_dir: Path
    locked: bool | None  # None: no lock file, or the kernel would not say
    holder: Holder | None
    # Damaged ranges recovery copied aside (stores/quarantine.py), until an operator deletes them.
    quarantined: list[Quarantined] = field(default_factory=list)

    def fields(self) -> dict[str, object]:
        holder = None
        if self.holder is not None:
            h = self.holder
            holder = {"name": h.name, "host": h.host, "pid": h.pid, "epoch": h.epoch,
                      "since": _iso(h.started), "started": h.started}
        # `holder` is the identity in the lock file: the master's when `master`, else the last one's.
        quarantined = [{"path": str(q.path), "bytes": q.size} for q in self.quarantined]
        return {"command": "status", "data_dir": str(self.data_dir), "master": bool(self.locked),
                "lock_file": self.locked is not None, "holder": holder, "quarantined": quarantined}

    def text(self) -> str:
        if not self.quarantined:
            return self._lock_text()
        total = sum(q.size for q in self.quarantined)
        lines = [f"quarantined: {len(self.quarantined)} damaged range(s), {total} bytes, not replayed "
                 "(docs/operations.md, \"Quarantine\"):"]
        lines += [f"  {q.path.relative_to(self.data_dir)} ({q.size} bytes)" for q in self.quarantined]
        return "\n".join([self._lock_text(), *lines])

    def _lock_text(self) -> str:
        if self.locked:
            if self.holder is None:
                return "master: lock held; holder has not written its identity yet"
            return f"master: {self.holder.describe()}"
        line = "no master (lock free)"
        if self.holder is not None:
            line += f"; last holder: {self.holder.describe()}"
        return line


def read_status(data_dir: Path, backend: str = "shared-file") -> Status:
    """Raises NotADirectoryError/FileNotFoundError if `data_dir` is not a directory."""
    if not data_dir.is_dir():
        raise NotADirectoryError(f"not a directory: {data_dir}")
    lock = create_lock(backend, data_dir)
    return Status(data_dir, lock.is_held(), lock.holder(), listing(data_dir))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
