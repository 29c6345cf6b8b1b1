"""LIKE matching (broker/like.py): right on every pattern, and linear in the text on hostile ones.

Linearity is shown by counting, not timing: the text is a `str` subclass that counts the characters
the matcher reads one by one (indexing) and the span each C-level search or comparison goes over,
so any algorithm that re-reads the text, in Python or through str methods, shows up in the count.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.engine.like import SCAN_COST, Like, LikeError


def reference(pattern: str, text: str, escape: str | None = None) -> bool:
    """The spec's meaning, by a regex (fine here: tiny inputs, not hostile)."""
    out, chars = [], iter(pattern)
    for ch in chars:
        if escape is not None and ch == escape:
            out.append(re.escape(next(chars)))
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.fullmatch("".join(out), text, re.DOTALL) is not None


@settings(max_examples=3000, deadline=None)
@given(st.text("ab%_", max_size=8), st.text("ab", max_size=12))
def test_matches_like_the_spec_on_any_small_pattern(pattern: str, text: str) -> None:
    assert Like(pattern).match(text) is reference(pattern, text)


@settings(max_examples=500, deadline=None)
@given(st.text("ab%_!", max_size=8).filter(lambda p: not re.search(r"!$|![^%_!]", p.replace("!!", ""))),
       st.text("ab%_", max_size=10))
def test_escaped_wildcards_are_literals(pattern: str, text: str) -> None:
    assert Like(pattern, "!").match(text) is reference(pattern, text, "!")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("widget-%", "widget-42", True),
        ("%-42", "widget-42", True),
        ("w_dget%", "widget-42", True),
        ("%dg%4_", "widget-42", True),
        ("%a%a%", "a", False),
        ("", "", True),
        ("%", "", True),
        ("___", "ab", False),
        ("a%b%c", "abc", True),
        ("a%b%c", "acb", False),
        ("%ab_", "xaab", False),  # the leftmost 'ab' leaves no room for '_': the next one does not exist
        ("%a_b%", "ab ab", False),
        ("%a_b%", "aabab", True),
        ("%%%x", "yx", True),
        ("é_%", "éè", True),
    ],
)
def test_examples(pattern: str, text: str, expected: bool) -> None:
    assert Like(pattern).match(text) is expected


def test_an_escape_at_the_end_of_the_pattern_is_refused() -> None:
    with pytest.raises(LikeError, match="ends the pattern"):
        Like("abc!", "!")


class Counted(str):
    """A text that counts what a matcher reads of it."""

    reads = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        Counted.reads += 1 if isinstance(index, int) else len(range(*index.indices(len(self))))
        return str.__getitem__(self, index)

    def find(self, sub, start=0, end=None):  # type: ignore[no-untyped-def,override]
        found = str.find(self, sub, start, end)
        stop = len(self) if end is None else min(end, len(self))
        # What a left-to-right search goes over: up to the end of the match, or to `end`.
        Counted.reads += (found + len(sub) if found >= 0 else stop) - start
        return found

    def startswith(self, prefix, start=0, end=None):  # type: ignore[no-untyped-def,override]
        Counted.reads += len(prefix)
        return str.startswith(self, prefix, start, end)

    def endswith(self, suffix, start=0, end=None):  # type: ignore[no-untyped-def,override]
        Counted.reads += len(suffix)
        return str.endswith(self, suffix, start, end)


def reads(like: Like, text: str) -> tuple[int, bool]:
    Counted.reads = 0
    result = like.match(Counted(text))
    return Counted.reads, result


HOSTILE = [
    # pattern, text of length n (a function of n), whether it matches
    ("%" + "a" * 500 + "b", lambda n: "a" * n, False),  # the '%a…b': O(n·m) for the old matcher
    ("%" + "a" * 500 + "b%", lambda n: "a" * n, False),
    ("%a" * 50 + "%b", lambda n: "a" * n, False),
    ("%" + "a_" * 200 + "b%", lambda n: "a" * n, False),  # a Shift-And scan that never dies down
    ("%" + "ab_" * 100 + "c%", lambda n: "ab" * (n // 2), False),
    ("_%" * 100 + "x", lambda n: "y" * n, False),
    ("%a_b%c_d%e", lambda n: ("a" * (n // 2)) + "axb" + "cyd" * (n // 8) + "e", True),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), HOSTILE)
def test_work_is_linear_in_the_text_on_hostile_patterns(pattern: str, text, expected: bool) -> None:  # type: ignore[no-untyped-def]
    like = Like(pattern)
    counts = []
    for n in (2_000, 16_000):
        count, result = reads(like, text(n))
        assert result is expected
        counts.append(count)
        # Each character is read a small constant number of times, plus the pattern once.
        assert count <= 3 * n + 2 * len(pattern), (n, count)
    assert counts[1] <= 9 * counts[0]  # eight times the text, about eight times the work


def test_the_old_two_pointer_matcher_would_fail_the_count() -> None:
    """The count above really measures: a backtracking matcher reading text[t] blows through it."""

    def two_pointer(pattern: str, text: str) -> bool:  # the matcher broker/like.py replaced
        t = p = 0
        star_p, star_t = -1, 0
        while t < len(text):
            if p < len(pattern) and pattern[p] in ("_", text[t]):
                t, p = t + 1, p + 1
            elif p < len(pattern) and pattern[p] == "%":
                star_p, star_t, p = p, t, p + 1
            elif star_p >= 0:
                p, star_t = star_p + 1, star_t + 1
                t = star_t
            else:
                return False
        return pattern[p:].strip("%") == ""

    Counted.reads = 0
    assert two_pointer("%" + "a" * 500 + "b", Counted("a" * 2_000)) is False
    assert Counted.reads > 100 * 2_000


def test_scan_cost_counts_only_segments_scanned_character_by_character() -> None:
    assert Like("%abc%def%").scans == 0  # found by str.find
    assert Like("a_c%x%y_z").scans == 0  # ends are compared in place
    assert Like("%a_c%d_f%").scans == 2
    assert Like("%___%").scans == 0  # only `_`: any position with room
    assert SCAN_COST > 1
