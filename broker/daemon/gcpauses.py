"""How long Python's cyclic garbage collector holds the broker: a `gc.callbacks` hook.

A collection stops the event loop, and every other thread, for as long as it walks its
generation: a young one for the objects made since the last, a full one for every object the
broker holds (docs/fairness.md). Counted per generation: collections, seconds in all and the
longest; served as metrics, and a collection of SLOW_PAUSE or more is logged. The callback runs
inside the collector, in whichever thread allocated last, so it only counts: it takes no lock
and logs nothing itself; the loop logs what it noted, once a second.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from typing import Any

log = logging.getLogger("batonmq.gc")

SLOW_PAUSE = 0.1  # seconds: a pause this long is logged
GENERATIONS = 3


class GcPauses:
    def __init__(self) -> None:
        self.collections = [0] * GENERATIONS
        self.seconds = [0.0] * GENERATIONS
        self.longest = [0.0] * GENERATIONS
        self._started = 0.0
        self._slow: deque[tuple[int, float, int]] = deque(maxlen=64)  # (generation, seconds, freed)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        generation, pause = info["generation"], now - self._started
        self.collections[generation] += 1
        self.seconds[generation] += pause
        if pause > self.longest[generation]:
            self.longest[generation] = pause
        if pause >= SLOW_PAUSE:
            self._slow.append((generation, pause, info["collected"]))

    def take_slow(self) -> list[tuple[int, float, int]]:
        """The slow collections noted since the last call, oldest first."""
        taken = []
        while self._slow:
            taken.append(self._slow.popleft())
        return taken

    async def log_slow(self, period: float = 1.0) -> None:
        while True:
            for generation, pause, freed in self.take_slow():
                log.info("gc: a generation %d collection held the broker %.0f ms (%d objects freed)",
                         generation, pause * 1000, freed)
            await asyncio.sleep(period)


PAUSES = GcPauses()  # the process's one collector, watched once
