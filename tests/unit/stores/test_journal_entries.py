"""One queue's compact index entries (stores/journal/entries.py), beside a dict model."""

from __future__ import annotations

import struct
from array import array

import crc32c
import msgpack
from hypothesis import given
from hypothesis import strategies as st

from stores.journal import checkpoint as ckpt
from stores.journal.entries import QueueEntries, place
from stores.journal.index import Location

# (kind, message number, file, offset, length): add (or relocate, if live), remove, relocate.
step = st.tuples(st.sampled_from("aarm"), st.integers(0, 40), st.integers(1, 5),
                 st.integers(0, (1 << 40) - 1), st.integers(1, (1 << 32) - 1))


class Tight(QueueEntries):
    SLACK = -(1 << 40)  # rebuilt at every removal


@given(st.lists(step, max_size=400), st.integers(1, 9), st.sampled_from([QueueEntries, Tight]))
def test_entries_match_a_dict_through_adds_removals_and_moves(
    script: list[tuple[str, int, int, int, int]], limit: int, kind: type[QueueEntries]
) -> None:
    entries = kind()
    model: dict[str, tuple[int, Location]] = {}  # live id -> (position, location), in store order
    for position, (kind, n, file, offset, length) in enumerate(script, start=1):
        message_id, loc = f"m{n}", Location(file, offset, length)
        if kind == "a" and message_id not in model:
            entries.add(message_id, position, loc)
            model[message_id] = (position, loc)
        elif kind == "r":
            assert entries.remove(message_id) == (model.pop(message_id)[1] if message_id in model else None)
        else:
            old = model.get(message_id)
            assert entries.relocate(message_id, loc) == (None if old is None else old[1])
            if old is not None:
                model[message_id] = (old[0], loc)
    assert len(entries) == len(model) and list(entries) == list(model)
    assert list(entries.items()) == [(mid, loc) for mid, (_, loc) in model.items()]
    for mid in (f"m{n}" for n in range(41)):
        assert (mid in entries) == (mid in model)
        assert entries.position(mid) == (model[mid][0] if mid in model else None)
        assert entries.locate(mid) == (model[mid][1] if mid in model else None)
    pages: list[tuple[int, str]] = []
    after: int | None = None
    while page := entries.after(after, limit):
        pages.extend(page)
        after = page[-1][0]
    assert pages == [(p, mid) for mid, (p, _) in model.items()]
    ids, places, lengths = entries.columns()
    assert ids == list(model)
    assert list(places) == [place(loc.file, loc.offset) for _, loc in model.values()]
    assert list(lengths) == [loc.length for _, loc in model.values()]
    for file in range(1, 6):
        assert entries.in_file(file) == [(mid, loc) for mid, (_, loc) in model.items() if loc.file == file]
    assert entries.records() == {(place(loc.file, loc.offset), loc.length) for _, loc in model.values()}


def test_entries_from_columns_page_and_locate_as_added_ones() -> None:
    locations = [Location(3, 10 * n, 100 + n) for n in range(5)]
    _, ids, places, lengths = ckpt.columns("/queue/a", [f"m{n}" for n in range(5)], locations)
    entries = QueueEntries.of(ids, places, lengths, first=7)
    assert entries.after(None, 2) == [(7, "m0"), (8, "m1")] and entries.after(9, 10)[0] == (10, "m3")
    assert entries.locate("m4") == Location(3, 40, 104) and entries.position("m2") == 9
    assert entries.remove("m0") == locations[0] and entries.locate("m0") is None


def test_a_checkpoint_is_byte_for_byte_what_one_map_packed_whole_gives() -> None:
    # The format is unchanged (FORMAT.md section 3): columns are packed a chunk at a time, and
    # each chunk's array header is cut off, so sizes either side of the header widths matter.
    queues = [(f"/queue/{count}", [f"m{n}" for n in range(count)],
               [Location(n % 3 + 1, n * 1000, 500 + n) for n in range(count)])
              for count in (1, 15, 16, 8191, 8192, 8193, 70_000)]
    cp = ckpt.Checkpoint(epoch=2, pos=(4, 99), files={1: 10, 4: None},
                         queues=[ckpt.columns(q, ids, locs) for q, ids, locs in queues], producers=["p"])
    body = {"epoch": 2, "pos": [4, 99], "files": [[1, 10], [4, None]],
            "queues": [[q, [[mid, *loc] for mid, loc in zip(ids, locs, strict=True)]]
                       for q, ids, locs in queues],
            "subs": [], "producers": ["p"]}
    payload = msgpack.packb(body, use_bin_type=True)
    assert ckpt.encode(cp) == ckpt.MAGIC + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload
    decoded = ckpt.decode(ckpt.encode(cp))
    assert [(q, ids, list(p), list(n)) for q, ids, p, n in decoded.queues] == [
        (q, ids, list(p), list(n)) for q, ids, p, n in cp.queues]
    assert all(isinstance(p, array) for _, _, p, _ in decoded.queues)
