"""The destination wildcard matcher against a plain model: a regular expression built from the
pattern the way ActiveMQ's documentation describes it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.engine.wildcard import compile_pattern, matches
from config.security import check_pattern

ELEMENT = st.sampled_from(["A", "B", "FOO", "", "*x", "a>"])  # literal '*'/'>' inside names too
NAMES = st.lists(ELEMENT, min_size=1, max_size=5).map(".".join)
PATTERNS = st.tuples(st.lists(st.sampled_from(["A", "B", "FOO", "", "*"]), max_size=4),
                     st.booleans()).map(lambda p: ".".join(p[0] + ([">"] if p[1] else [])) or ">")


def model(pattern: str, name: str) -> bool:
    """'*' = one element of any characters but '.', a last '>' = nothing or '.' and anything."""
    parts = pattern.split(".")
    tail = ""
    if parts[-1] == ">":
        parts, tail = parts[:-1], r"(\..*)?" if len(parts) > 1 else ".*"
    regex = r"\.".join("[^.]*" if p == "*" else re.escape(p) for p in parts) + tail
    return re.fullmatch(regex, name, re.DOTALL) is not None


@settings(max_examples=500)
@given(PATTERNS, NAMES)
def test_matcher_agrees_with_the_model(pattern: str, name: str) -> None:
    check_pattern(pattern)
    assert matches(compile_pattern(pattern), name) == model(pattern, name)


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("FOO.>", "FOO", True), ("FOO.>", "FOO.BAR.BAZ", True), ("FOO.>", "FOOBAR", False),
    ("FOO.*", "FOO.BAR", True), ("FOO.*", "FOO.BAR.BAZ", False), ("FOO.*", "FOO", False),
    ("*.BAR", "FOO.BAR", True), (">", "anything.at.all", True), ("FOO.BAR", "FOO.*", False),
])
def test_examples_from_activemq_documentation(pattern: str, name: str, expected: bool) -> None:
    assert matches(compile_pattern(pattern), name) is expected


@pytest.mark.parametrize("bad", ["FOO.>.BAR", "FOO>", "FO*", "", "A.*B"])
def test_wildcards_must_be_whole_elements(bad: str) -> None:
    with pytest.raises(ValueError):
        check_pattern(bad)
