"""Which segments a compaction replaces (FORMAT.md, "Compaction"). Pure.

A compaction copies the live messages of a prefix of the segments into a snapshot and deletes the
prefix; the segments after it stay. It pays the copy (live bytes) to free the prefix's bytes. A
consumer draining a backlog empties the oldest segments first: there the best prefix is the dead
ones, freed for the price of a few subscriptions, where copying the whole live log would rewrite
the backlog again at every compaction. With live messages spread evenly, the best prefix is the
whole log: the snapshot that replaces everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def prefix_to_replace(segments: Sequence[tuple[int, int]], live: Mapping[int, int], fixed: int,
                      min_dead: int, live_fraction: float,
                      may_keep_from: Callable[[int], bool]) -> int:
    """How many of `segments` ((number, bytes) in log order, the active one last) to replace; 0:
    none is worth it. `live`: live message bytes per segment; `fixed`: the bytes every snapshot
    copies (subscriptions, the duplicate window). A prefix qualifies if it frees at least
    `min_dead` bytes and what it copies is under `live_fraction` of it; of those, the one that
    frees the most beyond what it copies, among those that may end there: `may_keep_from(the next
    segment)` (asked only of the best, in turn)."""
    found: list[tuple[int, int]] = []  # (gain, prefix length)
    size = copied = 0
    for count, (number, nbytes) in enumerate(segments, start=1):
        size += nbytes
        copied += live.get(number, 0)
        cost = copied + fixed
        dead = size - cost
        if dead >= min_dead and cost < live_fraction * size:
            found.append((dead - cost, count))
    for _, count in sorted(found, reverse=True):
        if count == len(segments) or may_keep_from(segments[count][0]):
            return count
    return 0
