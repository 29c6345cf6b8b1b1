"""The lock protocol: one master per data directory (design.md section 2, docs/lock-protocol.md).

`backend.LockBackend` is the interface the HA lifecycle uses; `registry` maps a name to an
implementation. The shared-file backend is built from `directory` (the fcntl lock and the
holder's identity), `fencing` (the epoch), `heartbeat` and `takeover`; `identity` holds the
vocabulary every backend shares.
"""

from stores.lock.backend import LockBackend
from stores.lock.identity import Holder, LockLost, LockUnanswered
from stores.lock.registry import LOCK_BACKENDS, create_lock

__all__ = ["LOCK_BACKENDS", "Holder", "LockBackend", "LockLost", "LockUnanswered", "create_lock"]
