"""LIKE patterns (JMS 1.1 section 3.8.1.2) matched in time linear in the text, whatever the pattern.

`%` stands for any sequence of characters, `_` for any one. The pattern is cut at its `%`s into
segments, each a fixed-length run of literal characters and `_`s. A text matches when the first
segment is its prefix, the last its suffix, and the ones between occur in order in what is left,
without overlapping. Taking each middle segment at its leftmost occurrence after the previous one
is always right, since an earlier end leaves the rest more room (the classic greedy argument for
glob patterns). So the text is scanned once, left to right, and nothing is ever retried:

- a literal segment is found with `str.find`: CPython's fastsearch is linear (Crochemore-Perrin
  two-way) for long needles and makes at most len(needle) < 100 comparisons per character for
  short ones;
- a segment with `_` in it is found with the bit-parallel Shift-And automaton: one step per text
  character, the state a Python int with one bit per segment position, jumping ahead with
  `str.find` of the segment's first literal character whenever no partial match is alive.

The backtracking two-pointer matcher this replaces made O(len(text) × len(pattern)) steps, which
one 8,000-character header under a long `'%a…b'` pattern turned into a 20 s stall of the broker.
"""

from __future__ import annotations

# A `_` in a segment; anything else in a segment is one literal character.
ANY = None
# What one Shift-And scan costs in the selector's cost units (broker/selector.py): a step per
# character in Python, where `str.find` does the same in C about a hundred times faster.
SCAN_COST = 64


class LikeError(ValueError):
    """The pattern itself is malformed (an ESCAPE character with nothing after it)."""


class Segment:
    """A run of literal characters and `_`s between two `%`s (or an end of the pattern)."""

    __slots__ = ("length", "pieces", "literal", "masks", "wild", "hit", "lead", "lead_at")

    def __init__(self, items: list[str | None]) -> None:
        self.length = len(items)
        # (offset, text) of each maximal literal run: checking a position is one startswith each.
        self.pieces: list[tuple[int, str]] = []
        for offset, item in enumerate(items):
            if item is ANY:
                continue
            if self.pieces and self.pieces[-1][0] + len(self.pieces[-1][1]) == offset:
                self.pieces[-1] = (self.pieces[-1][0], self.pieces[-1][1] + item)
            else:
                self.pieces.append((offset, item))
        self.literal = "".join(items) if ANY not in items else None  # type: ignore[arg-type]
        # Shift-And tables, used only by `find` on a segment that mixes `_` and literals.
        self.masks: dict[str, int] = {}
        self.wild = 0
        for offset, item in enumerate(items):
            if item is ANY:
                self.wild |= 1 << offset
            else:
                self.masks[item] = self.masks.get(item, 0) | 1 << offset
        self.hit = 1 << (self.length - 1) if self.length else 0
        self.lead_at, self.lead = (self.pieces[0][0], self.pieces[0][1][0]) if self.pieces else (0, "")

    @property
    def scans(self) -> bool:
        """True if `find` steps through the text in Python (a mix of `_` and literal characters)."""
        return self.literal is None and bool(self.pieces)

    def at(self, text: str, start: int) -> bool:
        """Does the segment match text[start:start + length]? The caller has checked the length."""
        for offset, piece in self.pieces:
            if not text.startswith(piece, start + offset):
                return False
        return True

    def find(self, text: str, start: int, end: int) -> int:
        """The leftmost i with start <= i and i + length <= end where the segment matches, or -1."""
        if self.literal is not None:
            return text.find(self.literal, start, end)
        if not self.pieces:  # only `_`s: any position with room
            return start if start + self.length <= end else -1
        masks, wild, hit, lead, lead_at = self.masks, self.wild, self.hit, self.lead, self.lead_at
        get = masks.get
        state, i = 0, start
        while i < end:
            if not state:
                # No partial match is alive, so the next match starts where its first literal
                # character is next found, minus its offset: skip there in C.
                found = text.find(lead, i + lead_at, end)
                if found < 0:
                    return -1
                i = found - lead_at
            state = ((state << 1) | 1) & (get(text[i], 0) | wild)
            if state & hit:
                return i - self.length + 1
            i += 1
        return -1


class Like:
    """A compiled LIKE pattern; `match(text)` runs in time linear in len(text) + len(pattern)."""

    __slots__ = ("segments", "anchored", "min_length", "scans")

    def __init__(self, pattern: str, escape: str | None = None) -> None:
        self.segments: list[Segment] = []
        items: list[str | None] = []
        self.anchored = True  # no `%` at all: the whole text is one segment
        chars = iter(pattern)
        for ch in chars:
            if escape is not None and ch == escape:
                literal = next(chars, None)
                if literal is None:
                    raise LikeError(f"ESCAPE character {escape!r} ends the pattern")
                items.append(literal)
            elif ch == "%":
                self.segments.append(Segment(items))
                items = []
                self.anchored = False
            elif ch == "_":
                items.append(ANY)
            else:
                items.append(ch)
        self.segments.append(Segment(items))
        if not self.anchored:
            # Consecutive `%`s left empty segments between them; they match anywhere.
            head, *middle, tail = self.segments
            self.segments = [head, *(s for s in middle if s.length), tail]
        self.min_length = sum(s.length for s in self.segments)
        self.scans = sum(1 for s in self.segments[1:-1] if s.scans)

    def match(self, text: str) -> bool:
        segments = self.segments
        head = segments[0]
        if self.anchored:
            return len(text) == head.length and head.at(text, 0)
        n = len(text)
        if n < self.min_length:
            return False
        tail = segments[-1]
        if not (head.at(text, 0) and tail.at(text, n - tail.length)):
            return False
        pos, end = head.length, n - tail.length
        for index in range(1, len(segments) - 1):
            segment = segments[index]
            found = segment.find(text, pos, end)
            if found < 0:
                return False
            pos = found + segment.length
        return True
