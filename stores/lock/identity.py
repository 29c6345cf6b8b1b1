"""The lock protocol's vocabulary, whatever the backend: who holds the lock, and the two errors.

`LockLost` answers "is the lock still ours?" with no; `LockUnanswered` says the backend (the file
system, a database) gave no answer at all. docs/lock-protocol.md, "Two questions".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from stores.base import StoreClosed, StoreError

MAX_IDENTITY = 4096  # bytes; a larger lock file is not ours and is not parsed
MAX_NAME = 400  # characters (BrokerConfig.name allows 200)
MAX_HOST = 255
MAX_STARTED = 1e11  # seconds: year 5138; keeps describe() away from datetime overflow


class LockLost(StoreClosed):
    """The shared-directory lock is no longer provably ours: stop serving at once (design §2)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"lock lost: {reason}")
        self.reason = reason


class LockUnanswered(StoreError):
    """A lock check could not be made: the file system failed or refused the I/O.

    Not evidence that the lock is gone (docs/lock-protocol.md "Two questions"): a slow or failing
    file system becomes a lost lock only when no check has succeeded for `lock_timeout`.
    """


@dataclass(frozen=True)
class Holder:
    """Who holds the lock; written into the lock file so a waiting slave can log it."""

    name: str
    host: str
    pid: int
    started: float  # wall-clock seconds since the Unix epoch
    epoch: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> Holder | None:
        """Parse an identity; anything malformed (torn, foreign, hostile) is None, never an error."""
        if len(data) > MAX_IDENTITY:
            return None
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None
        if not isinstance(raw, dict) or set(raw) != {"name", "host", "pid", "started", "epoch"}:
            return None
        name, host, pid, started, epoch = (raw[k] for k in ("name", "host", "pid", "started", "epoch"))
        if not (_is_text(name, MAX_NAME) and _is_text(host, MAX_HOST)):
            return None
        if not (_is_int(pid, 1, 2**31) and _is_int(epoch, 0, 2**63)):
            return None
        if isinstance(started, bool) or not isinstance(started, int | float):
            return None
        if not (math.isfinite(started) and 0 <= started < MAX_STARTED):
            return None
        return cls(name, host, pid, float(started), epoch)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"broker {self.name} on host {self.host} pid {self.pid} epoch {self.epoch} since {since}"


def _is_text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high
