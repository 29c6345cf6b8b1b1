"""A progress line on stderr for long runs, and the one-line summaries the tools print.

The bar appears only when stderr is a terminal and the run has lasted `delay` seconds, so scripts,
pipes and short runs never see control characters.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 24


class Progress:
    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None,
                 enabled: bool | None = None, delay: float = 1.0, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.label, self.total = label, total
        self.started = time.monotonic()
        self._delay, self._interval = delay, interval
        self._next_draw = self.started + delay
        self._drawn = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + self._interval
        self.stream.write("\r" + render(self.label, done, self.total, now - self.started))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")  # erase the bar so the summary starts on a clean line
            self.stream.flush()
            self._drawn = False


def render(label: str, done: int, total: int | None, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if not total:
        return f"{label}: {done} ({rate:,.0f} msg/s)"
    fraction = min(1.0, done / total)
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"{label} [{bar}] {done}/{total} {fraction:6.1%} ({rate:,.0f} msg/s)"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def rate(count: int, elapsed: float) -> float:
    return round(count / elapsed, 1) if elapsed > 0 else 0.0


def summary_line(fields: dict[str, Any], *, as_json: bool, text: str) -> str:
    """`fields` as one JSON object, or the human `text`."""
    return json.dumps(fields, sort_keys=False) if as_json else text


def cancelled_by_user() -> bool:
    """Whether the CancelledError being handled is Ctrl-C: on SIGINT asyncio's runner cancels the
    main task, which the client commands turn into an early end with a summary. A cancellation from
    inside (a receipt wait cut by a lost link) leaves the task itself uncancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
