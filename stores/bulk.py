"""Building a store's large in-memory index in one go (an open, a follower's rebuild).

Such a build allocates millions of small objects that all stay alive: the cyclic garbage
collector, triggered by the allocation count, would walk the growing heap again and again and
find nothing (measured: it doubles the time to load a checkpoint of a million messages). It is
paused for the build and runs normally afterwards.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_builds = 0  # blocks inside gc_paused, in any thread
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector (process-wide) for the block; with several builds at once (two
    stores, threads) it stays paused until the last one ends."""
    global _builds, _was_enabled
    with _lock:
        if _builds == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if _builds == 0 and _was_enabled:
                gc.enable()
