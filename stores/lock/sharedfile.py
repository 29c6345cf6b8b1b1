"""The shared-file lock backend: design.md section 2 on a shared directory (NFSv4, GFS2, a disk).

`<data dir>/lock` (an OFD fcntl lock and the holder's identity, stores.lock.directory),
`<data dir>/epoch` (stores.lock.fencing) and `<data dir>/heartbeat` (stores.lock.heartbeat),
with the takeover rules of stores.lock.takeover.
"""

from __future__ import annotations

import threading
from pathlib import Path

from stores.base import Fence
from stores.lock.directory import DirectoryLock, lock_held, read_holder
from stores.lock.fencing import LockFence, bump_epoch
from stores.lock.heartbeat import HeartbeatWriter
from stores.lock.identity import Holder, LockLost
from stores.lock.takeover import previous_master_gone


class SharedFileLock:
    kind = "shared-file"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.lock = DirectoryLock(self.data_dir)
        self._epoch = 0
        self._fence: LockFence | None = None
        self._heartbeat: HeartbeatWriter | None = None

    def try_acquire(self) -> bool:
        return self.lock.try_acquire()

    def wait_acquire(self, timeout: float) -> bool:
        return self.lock.wait_acquire(timeout)

    def holder(self) -> Holder | None:
        return read_holder(self.data_dir)

    def is_held(self) -> bool | None:
        return lock_held(self.data_dir)

    def bump_epoch(self) -> int:
        if not self.lock.held:
            raise LockLost("the epoch is bumped only with the lock held")
        self._epoch = bump_epoch(self.data_dir)
        self._fence = None
        return self._epoch

    def publish(self, holder: Holder) -> None:
        self.lock.publish(holder)

    def previous_master_gone(
        self, my_host: str, stale_after: float, margin: float, abort: threading.Event
    ) -> str:
        return previous_master_gone(
            self.data_dir, my_host, stale_after, margin, abort=abort, sleep=abort.wait
        )

    def start_beating(self, holder: Holder, stale_after: float) -> None:
        self._heartbeat = HeartbeatWriter(self.data_dir, holder, stale_after=stale_after)
        self._heartbeat.beat()

    def check(self) -> None:
        if self._heartbeat is None:
            raise LockLost("the term has no heartbeat")
        self.lock.verify()
        self.fence().check()
        self._heartbeat.beat()

    def fence(self) -> Fence:
        if self._fence is None:
            self._fence = LockFence(self.lock, self._epoch)
        return self._fence

    def end_term(self, clean: bool) -> None:
        beat, self._heartbeat = self._heartbeat, None
        if beat is None:
            return
        if clean:
            beat.mark_released()  # closes it too; False (not ours any more) needs no action
        else:
            beat.close()

    def release(self) -> None:
        self.lock.release()
