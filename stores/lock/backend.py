"""The lock-backend interface: what the HA lifecycle needs from "one master per data directory".

A backend answers, for one data directory: may I be master (acquire, wait), is it still me
(check, fence), who is it (holder), and is the one before me gone (takeover). The shared-file
backend (`stores.lock.sharedfile`) does this with an fcntl lock, an epoch file and a heartbeat
file in the shared directory; a lease row in a database would be another module behind the same
Protocol and one more line in `stores.lock.registry`. docs/lock-protocol.md states the rules
every backend must keep: the epoch is bumped before the store opens, `check()` and the fence
split "not ours" (LockLost) from "no answer" (LockUnanswered), and the takeover wait is never
shorter than the previous holder's promise (`stale_after`).

Every method may block on I/O: the lifecycle calls them on worker threads, never on the loop,
except `fence().check()`, which a store calls after each group commit and must stay cheap.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from stores.base import Fence
from stores.lock.identity import Holder


@runtime_checkable
class LockBackend(Protocol):
    kind: str  # the registry name, e.g. "shared-file"

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""

    def wait_acquire(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for the lock; True once it is ours."""

    def holder(self) -> Holder | None:
        """The identity the current (or last) holder published; None if unknown. Never raises."""

    def is_held(self) -> bool | None:
        """Whether anyone holds the lock now, asked without taking it; None if it cannot tell."""

    def bump_epoch(self) -> int:
        """Increment the fencing epoch durably and return it. Only with the lock held."""

    def publish(self, holder: Holder) -> None:
        """Make our identity visible to waiting slaves and `batonmq status`."""

    def previous_master_gone(
        self, my_host: str, stale_after: float, margin: float, abort: threading.Event
    ) -> str:
        """Block until the previous holder is known gone (returns why); TakeoverAborted on `abort`."""

    def start_beating(self, holder: Holder, stale_after: float) -> None:
        """Begin the term's heartbeat; `stale_after` is our promise to successors (lock_timeout)."""

    def check(self) -> None:
        """The keep-alive check: raise LockLost if the lock is not ours, LockUnanswered if the
        backend did not answer; otherwise renew our heartbeat."""

    def fence(self) -> Fence:
        """The cheap per-commit proof of this term (epoch and lock unchanged) for the store."""

    def end_term(self, clean: bool) -> None:
        """After the keep-alive has stopped: with `clean`, tell successors we released cleanly
        (store closed, nothing bound); then drop the heartbeat. Never raises."""

    def release(self) -> None:
        """Give the lock up; idempotent. Called last."""
