"""A store's disk usage against its limit (ActiveMQ's storeUsage), for producer flow control.

The broker asks `full` before it takes a persistent SEND; while it is true the SEND waits in
`room()` (up to `store.usage_timeout`), then is refused with an ERROR naming the limit
(docs/operations.md, "Disk limits"). A monitor task measures every `interval` seconds: the bytes
of the store's files (its directory, not the quarantine below it) and the file system's free
space. Between two measurements the broker adds what it asks the store to write (`note`), so a
burst cannot run far past the limit before the next measurement sees it.

Space comes back when consumers remove messages: once full, the monitor asks the store to
`reclaim()` (journal cleanup and compaction, append-log compaction, LevelDB compaction) every
second in which something was removed, until the store has room and removals stop, so sends
succeed again without a restart and the emptied files are gone. It also
allocates the reserve (stores/reserve.py) again when the disk has room for it.

The default limit follows ActiveMQ (100 GiB, capped to the disk): the smaller of 100 GiB and
what the store holds plus 90% of the file system's free space when the term starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from config.model import StoreSettings
from stores import reserve
from stores.base import Store, StoreError

log = logging.getLogger(__name__)

GiB = 1024**3
DEFAULT_LIMIT = 100 * GiB  # ActiveMQ's storeUsage default
FREE_FRACTION = 0.9  # of the free space at start, when no limit is configured
RECLAIM_EVERY = 1.0  # seconds between two reclaim() calls while full


def default_limit(used: int, free: int) -> int:
    return min(DEFAULT_LIMIT, used + int(free * FREE_FRACTION))


def store_bytes(directory: Path) -> int:
    """Bytes of the files directly in the store directory (the quarantine below it is not counted)."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):  # deleted by cleanup meanwhile
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0
    return total


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def size_text(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class StoreUsage:
    def __init__(self, store: Store, settings: StoreSettings, data_dir: Path, interval: float = 0.25) -> None:
        self.store = store
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.interval = interval
        self.limit = settings.usage_limit or 0  # resolved by start()
        self.used = 0  # at the last measurement
        self.free = 0
        self.refused = 0  # SENDs refused at the limit (metrics)
        self._pending = 0  # bytes asked of the store since the last measurement
        self._removed = 0  # removals since the last reclaim
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._was_full = False
        self._reclaiming = False

    async def start(self) -> None:
        await self._measure()
        if self.settings.usage_limit is None:
            self.limit = default_limit(self.used, self.free)
        elif self.settings.usage_limit > self.used + self.free:
            log.warning("store.usage_limit %s is more than the disk can hold (%s used + %s free): the "
                        "disk fills first, and SENDs then fail on a write error",
                        size_text(self.settings.usage_limit), size_text(self.used), size_text(self.free))
        log.info("store usage %s of limit %s (%s free on the disk)", size_text(self.used),
                 size_text(self.limit), size_text(self.free))
        self._update()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- what the broker asks --------------------------------------------------------------------

    def note(self, written: int, removed: int = 0) -> None:
        """The broker asked the store to write about `written` bytes (and remove `removed` messages)."""
        self._pending += written
        self._removed += removed
        if written and self._room.is_set() and self.full:
            self._update()

    @property
    def full(self) -> bool:
        if self.used + self._pending >= self.limit:
            return True
        return self.free - self._pending < self.settings.min_free

    def reason(self) -> str:
        """Why producers are held, naming the setting (the ERROR frame's text)."""
        used = self.used + self._pending
        if used >= self.limit:
            return (f"the store uses {size_text(used)} of its limit of {size_text(self.limit)} "
                    "(store.usage_limit, <storeUsage limit>)")
        return (f"the disk has {size_text(max(0, self.free - self._pending))} free, less than "
                f"store.min_free ({size_text(self.settings.min_free)})")

    async def room(self, timeout: float) -> bool:
        """Wait until the store is below its limits; False if still full after `timeout` seconds."""
        if not self.full:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)
        return not self.full

    # -- the monitor -------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_reclaim = 0.0
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._measure()
                # From the moment the store is full until consumers stop removing: the files their
                # removals empty are deleted now, not at the store's next cleanup interval.
                self._reclaiming = self._reclaiming or self.full
                if self._reclaiming and loop.time() - last_reclaim >= RECLAIM_EVERY:
                    if self._removed:
                        self._removed, last_reclaim = 0, loop.time()
                        await self.store.reclaim()
                        await self._measure()
                    elif not self.full:
                        self._reclaiming = False
                self._update()
            except (OSError, StoreError) as exc:
                log.warning("store usage: measuring or reclaiming failed, will retry: %s", exc)

    async def _measure(self) -> None:
        # Assigned here, on the loop, where note() adds: what is noted while the thread measures is
        # counted by neither (a fraction of a second of writes), never twice.
        self.used, self.free = await asyncio.to_thread(self._measure_blocking)
        self._pending = 0

    def _measure_blocking(self) -> tuple[int, int]:
        """Worker thread: one scan of the store directory and one statvfs; the reserve if missing."""
        used, free = store_bytes(self.store.directory), free_bytes(self.data_dir)
        size = self.settings.reserve
        # Only with room for it twice over: right after a restart on a full disk, the reserve just
        # released must stay free for the acknowledgements that will free the rest.
        room = size > 0 and free > 2 * size + self.settings.min_free
        if not room or reserve.present(self.data_dir, size):
            return used, free
        try:
            self.store.fence.check()  # a deposed master must not remake what its successor released
        except StoreError:
            return used, free
        if reserve.restore(self.data_dir, size):
            free = free_bytes(self.data_dir)
        return used, free

    def _update(self) -> None:
        full = self.full
        if full and not self._was_full:
            log.warning("store full: persistent SENDs are held: %s", self.reason())
        elif self._was_full and not full:
            log.warning("store has room again (%s of %s, %s free): SENDs proceed", size_text(self.used),
                        size_text(self.limit), size_text(self.free))
        self._was_full = full
        if full:
            self._room.clear()
        else:
            self._room.set()
