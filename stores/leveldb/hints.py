"""Where the messages a page read returned are stored, so that their removal needs no index lookup.

After an open every stored message is older than the in-memory index, so removing one (an ack of a
recovered backlog) looked its seq up in its i/ key: one LevelDB get per message in the writer
thread, scattered over the index blocks that the page reads push out of the block cache; and those
gets, missing in a level whose files overlap, charge LevelDB's seek counters until it compacts the
live backlog in the middle of the drain. A page already read each message's seq from its key.

A page is read from a snapshot in a worker thread while the writer removes messages, so a message
it returned may have been removed since. The writer reports each written group's removals here
(`written`), and a read reports its seqs (`learn`) with the count of groups written before its
snapshot was taken (`mark`): a seq is kept only if no later group removed its message, and
forgotten when a group does. The removals of a group are kept only while a read that began before
it has not reported. Reports are made under one lock; lookups (`get`) are plain dict reads.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from itertools import islice

Key = tuple[str, str]  # (queue, message id)

MAX_HINTS = 65536  # seqs kept at most (pages read but never removed, e.g. a browse, age out)
RECENT_GROUPS = 1024  # groups whose removals a read that started before them can still check


class SeqHints:
    def __init__(self, capacity: int = MAX_HINTS, recent: int = RECENT_GROUPS) -> None:
        self._seqs: dict[Key, int] = {}
        self._lock = threading.Lock()
        self._groups = 0  # groups written so far
        self._reads: Counter[int] = Counter()  # the marks of the reads that have not reported yet
        self._recent: deque[tuple[int, frozenset[Key]]] = deque()  # (group, its removals), oldest first
        self._forgotten = 0  # the newest group dropped from `_recent`
        self._keep = recent
        self._capacity = capacity

    def get(self, key: Key) -> int | None:
        return self._seqs.get(key)

    def __len__(self) -> int:
        return len(self._seqs)

    def mark(self) -> int:
        """Before a read takes its snapshot: the groups written so far (all of them in the snapshot).
        The read must then call `learn` once, whatever happens (with no seqs if it failed)."""
        with self._lock:
            self._reads[self._groups] += 1
            return self._groups

    def learn(self, mark: int, seqs: Iterable[tuple[Key, int]]) -> None:
        """A read's seqs, except of messages that a group written after `mark` removed."""
        with self._lock:
            forgotten = self._forgotten > mark  # a group written since `mark` is no longer remembered
            removed: set[Key] = set()
            for group, keys in reversed(self._recent):
                if group <= mark:
                    break
                removed.update(keys)
            self._reads[mark] -= 1
            if not self._reads[mark]:
                del self._reads[mark]
            self._trim()
            if forgotten:
                return  # keep nothing
            for key, seq in seqs:
                if key not in removed:
                    self._seqs[key] = seq
            excess = len(self._seqs) - self._capacity
            if excess > 0:  # the oldest first (insertion order)
                for key in list(islice(self._seqs, excess)):
                    del self._seqs[key]

    def written(self, removed: Iterable[Key]) -> None:
        """Writer thread, after a group's batch was written: its removed messages are gone."""
        gone = frozenset(removed)
        with self._lock:
            self._groups += 1
            for key in gone:
                self._seqs.pop(key, None)
            if gone and self._reads:  # a read in progress may have seen them
                self._recent.append((self._groups, gone))
            self._trim()

    def _trim(self) -> None:
        """Under the lock: drop the removals that no read in progress began before, and beyond the
        last `recent` groups (then a read that began before them keeps nothing)."""
        oldest = min(self._reads, default=self._groups)
        while self._recent and (self._recent[0][0] <= oldest or len(self._recent) > self._keep):
            group = self._recent.popleft()[0]
            if group > oldest:
                self._forgotten = group
