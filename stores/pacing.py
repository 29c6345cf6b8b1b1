"""When a store's periodic maintenance (a checkpoint, a cleanup pass) runs next: at its configured
interval, or later if the pass costs so much that the interval would spend more than
MAX_SHARE of the time on it.

A checkpoint costs in proportion to the live messages. Measured on a 2-core VM: 0.1 s at one
million and 1 s at ten million, most of it holding the GIL. Every 5 s, that is a fifth of the
broker's CPU taken from the consumer draining that backlog. So a pass that took `took` seconds
is followed by a gap of at least `took / MAX_SHARE - took`. Below about two and a half million
live messages nothing changes. Above that, the journal tail a cold recovery replays grows
accordingly: at most about 20 s of writes at ten million. A takeover from the hot standby
replays no more than before (it follows the files, not the checkpoint).
"""

from __future__ import annotations

MAX_SHARE = 0.05  # of the time, that a periodic pass may take


def next_due(finished: float, took: float, interval: float) -> float:
    """When the next pass is due: `interval` after `finished`, or later by the rule above."""
    return finished + max(interval, stretched_gap(took))


def stretched_gap(took: float) -> float:
    """The least gap after a pass that took `took` seconds (0 for a pass that cost nothing)."""
    return max(0.0, took) * (1.0 / MAX_SHARE - 1.0)
