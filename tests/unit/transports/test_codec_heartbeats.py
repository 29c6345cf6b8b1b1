"""Heart-beat EOLs in bulk (STOMP 1.2 "Heart-beating"): a flood is skipped in linear time and memory.

Issue 11 measured 1.5 s stalls of the event loop per 10 MB of newlines. These tests pin what the
fix rests on: every EOL is counted, nothing of a flood stays buffered, a CR LF split across reads
or a lone CR inside a run is handled as before, and the work does not grow with the flood's size
per byte (by counting regex scans, not by timing).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.stomp import ProtocolError, StompParser, codec

SEND = b"SEND\ndestination:/queue/a\n\nhello\0"
READ = 256 * 1024  # what one read of a TCP socket delivers at most


def test_a_ten_megabyte_flood_is_counted_and_leaves_nothing_buffered() -> None:
    parser = StompParser()
    for unit in (b"\n", b"\r\n"):
        chunk = unit * (READ // len(unit))
        for _ in range(20):
            parser.feed(chunk)
            assert parser.next_frame() is None
            assert parser.buffered == 0  # consumed beats are dropped, not kept and copied around
    assert parser.heartbeats == 20 * READ + 20 * READ // 2
    parser.feed(SEND)
    frame = parser.next_frame()
    assert frame is not None and frame.body == b"hello"


def test_a_cr_lf_split_across_reads_at_the_end_of_a_flood() -> None:
    parser = StompParser()
    parser.feed(b"\n" * 50_000 + b"\r\n" * 50_000 + b"\r")
    assert parser.next_frame() is None
    assert parser.heartbeats == 100_000 and parser.buffered == 1  # only the CR waits for its LF
    parser.feed(b"\n" + SEND)
    assert parser.next_frame() is not None and parser.heartbeats == 100_001


@pytest.mark.parametrize("flood", [b"\n" * 5000 + b"\r\r\n", b"\r\n" * 5000 + b"\rX"])
def test_a_lone_cr_inside_a_flood_is_refused_as_before(flood: bytes) -> None:
    parser = StompParser()
    parser.feed(flood + SEND)
    with pytest.raises(ProtocolError, match="invalid command"):
        parser.next_frame()


class CountingPattern:
    """Wraps one of the codec's regexes and counts its calls (the scans the skip makes)."""

    def __init__(self, pattern) -> None:  # type: ignore[no-untyped-def]
        self.pattern = pattern
        self.calls = 0

    def match(self, *args):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.pattern.match(*args)

    def search(self, *args):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.pattern.search(*args)


def test_the_skip_scans_a_run_a_bounded_number_of_times_whatever_its_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counters = {name: CountingPattern(getattr(codec, name)) for name in ("_LF_RUN", "_EOL_RUN", "_LONE_CR")}
    for name, counter in counters.items():
        monkeypatch.setattr(codec, name, counter)
    scans = []
    for size in (1_000, 100_000):
        parser = StompParser()
        parser.feed(b"\n" * size + b"\r\n" * size + b"\n" * size + SEND)
        assert parser.next_frame() is not None and parser.heartbeats == 3 * size
        scans.append(sum(c.calls for c in counters.values()))
        for counter in counters.values():
            counter.calls = 0
    assert scans[0] == scans[1] <= 3  # one pass per kind of run, not one per byte or per EOL


def reference_beats(stream: bytes) -> int | None:
    """EOLs before the first frame byte by the spec's grammar; None if a lone CR comes first."""
    beats, i = 0, 0
    while i < len(stream):
        if stream[i] == 10:
            beats, i = beats + 1, i + 1
        elif stream[i : i + 2] == b"\r\n":
            beats, i = beats + 1, i + 2
        elif stream[i] == 13:
            return None
        else:
            break
    return beats


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), max_size=40), st.integers(1, 7))
def test_any_mix_of_eols_in_any_chunking_matches_the_grammar(units: list[bytes], chunk: int) -> None:
    stream = b"".join(units) + SEND
    expected = reference_beats(stream)
    parser = StompParser()
    frames, error = [], None
    try:
        for start in range(0, len(stream), chunk):
            parser.feed(stream[start : start + chunk])
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
    except ProtocolError as exc:
        error = exc
    if expected is None:
        assert error is not None and "invalid command" in str(error)
    else:
        assert error is None and len(frames) == 1 and parser.heartbeats == expected
