"""One queue's compact index entries (stores/entries.py), beside a dict model."""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from pathlib import Path

import crc32c
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stores import columns
from stores.base import AddMessage, RemoveMessage, StoredMessage
from stores.entries import Packed, Prefixes, QueueEntries, place
from stores.journal import checkpoint as ckpt
from stores.journal.index import Index, Location
from stores.journal.records import Move

# (kind, message number, file, offset, length): add (or relocate, if live), remove, relocate.
step = st.tuples(st.sampled_from("aarm"), st.integers(0, 40), st.integers(1, 5),
                 st.integers(0, (1 << 40) - 1), st.integers(1, (1 << 32) - 1))


class Tight(QueueEntries):
    SLACK = -(1 << 40)  # rebuilt at every removal


class Blocky(QueueEntries):
    BLOCK = 3  # frozen every three adds: blocks, widened blocks and dropped blocks in every script


class TightBlocky(Blocky):
    SLACK = -(1 << 40)


def encoded(packed: Packed) -> bytes:
    """One queue as a checkpoint's bytes."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join(bytes(part) for part in columns.encode_queue(packer, "/queue/q", packed))


def message_id(n: int) -> str:
    """Ids of the three kinds: keyed (a prefix and a counter), a counter with a leading zero and
    no counter at all (both extras), so that adds out of counter order make extras too."""
    return (f"ID:b-{n}", f"q-0{n}", f"m{n}z")[n % 3]


KINDS = [QueueEntries, Tight, Blocky, TightBlocky]


@given(st.lists(step, max_size=400), st.integers(1, 9), st.sampled_from(KINDS), st.booleans())
def test_entries_match_a_dict_through_adds_removals_and_moves(
    script: list[tuple[str, int, int, int, int]], limit: int, kind: type[QueueEntries], sized: bool
) -> None:
    entries = kind(sized=sized)
    model: dict[str, tuple[int, Location]] = {}  # live id -> (position, location), in store order
    sizes: dict[str, int] = {}  # live id -> its size (sized entries keep it; others say 0)
    # A checkpoint's view taken halfway: what it encodes stays as it was then, whatever follows.
    halfway: tuple[Packed, bytes, int] | None = None
    for position, (kind, n, file, offset, length) in enumerate(script, start=1):
        if position == len(script) // 2:
            halfway = entries.frozen(), encoded(entries.packed()), len(entries)
        mid, loc = message_id(n), Location(file, offset, length)
        if kind == "a" and mid not in model:
            entries.add(mid, position, loc, size=position * 3 + n)
            model[mid] = (position, loc)
            sizes[mid] = position * 3 + n if sized else 0
        elif kind == "r" and n % 2:
            assert entries.remove(mid) == (model.pop(mid)[1] if mid in model else None)
            sizes.pop(mid, None)
        elif kind == "r":
            assert entries.pop(mid) == ((model.pop(mid)[1], sizes.pop(mid)) if mid in model else None)
        else:
            old = model.get(mid)
            assert entries.relocate(mid, loc) == (None if old is None else old[1])
            if old is not None:
                model[mid] = (old[0], loc)
    assert len(entries) == len(model) and list(entries) == list(model)
    if halfway is not None:
        view, then, count = halfway
        assert encoded(view) == then and len(view.keys) == count
    assert list(entries.items()) == [(mid, loc) for mid, (_, loc) in model.items()]
    for mid in map(message_id, range(41)):
        assert (mid in entries) == (mid in model)
        assert entries.position(mid) == (model[mid][0] if mid in model else None)
        assert entries.locate(mid) == (model[mid][1] if mid in model else None)
    pages: list[tuple[int, str]] = []
    after: int | None = None
    while page := entries.after(after, limit):
        pages.extend(page)
        after = page[-1][0]
    assert pages == [(p, mid) for mid, (p, _) in model.items()]
    located: list[tuple[int, str, Location]] = []
    after = None
    while found := entries.after_located(after, limit):
        located.extend(found)
        after = found[-1][0]
    assert located == [(p, mid, loc) for mid, (p, loc) in model.items()]
    for file in range(1, 6):
        assert entries.in_file(file) == [(mid, loc) for mid, (_, loc) in model.items() if loc.file == file]
    assert list(entries.placed()) == [(place(loc.file, loc.offset), loc.length) for _, loc in model.values()]
    # Packed (as a checkpoint holds them) and loaded again: the same messages, renumbered from 7.
    packed = entries.packed()
    assert encoded(entries.frozen()) == encoded(packed)
    assert list(packed.places) == [place(loc.file, loc.offset) for _, loc in model.values()]
    assert list(packed.lengths) == [loc.length for _, loc in model.values()]
    assert (None if packed.sizes is None else list(packed.sizes)) == (list(sizes.values()) if sized else None)
    loaded = type(entries).of(entries._prefixes, packed, first=7)
    assert list(loaded.items()) == list(entries.items())
    first = list(model)[:3]
    assert [loaded.pop(mid) for mid in first] == [(model[mid][1], sizes[mid]) for mid in first]
    for i, mid in enumerate(first):
        loaded.add(mid, 5000 + i, model[mid][1], size=sizes[mid])  # back, at the end
        model[mid] = model.pop(mid)
    assert [mid for _, mid in loaded.after(None, 1000)] == list(model)
    for mid in model:
        assert loaded.locate(mid) == model[mid][1]
        loaded.add(mid + "!", 10_000, Location(1, 0, 1))  # a loaded queue takes new ones after its own
    assert list(loaded)[len(model):] == [mid + "!" for mid in model]


def test_a_checkpoint_view_stays_as_it_was_taken_while_blocks_change() -> None:
    entries = Blocky(sized=True)
    for n in range(10):
        entries.add(f"ID:b-{n}", n + 1, Location(1, n * 10, 5), size=n)
    assert len(entries._state[0]) == 3  # three frozen blocks and a tail of one
    view, then = entries.frozen(), encoded(entries.packed())
    assert entries.remove("ID:b-1") and entries.remove("ID:b-9")  # a block's slot, the tail's
    for n in (0, 2):
        entries.remove(f"ID:b-{n}")  # the first block goes
    # Relocations a block's narrow columns cannot hold: an older file, a far offset, a long record.
    entries.relocate("ID:b-4", Location(0, 1 << 33, 1 << 20))
    entries.add("ID:b-10", 11, Location(2, 0, 5), size=10)
    assert encoded(view) == then and len(view.keys) == 10
    assert entries.locate("ID:b-4") == Location(0, 1 << 33, 1 << 20) and len(entries) == 7
    assert encoded(entries.frozen()) == encoded(entries.packed())


def test_keys_spell_their_ids_exactly() -> None:
    prefixes = Prefixes()
    for mid in ("ID:a-1", "ID:a-0", "ID:a-999999999999", "7", "ID:a-1z1"):
        key = prefixes.key(mid, add=True)
        assert key is not None and prefixes.spell(key) == mid
    for mid in ("ID:a-01", "ID:a-", "", "ID:a-1000000000000", "ID:a-\u0661"):
        assert prefixes.key(mid, add=True) is None  # extras: no canonical counter that fits
    assert prefixes.names == ["ID:a-", "", "ID:a-1z"]
    assert prefixes.key("ID:b-1") is None  # an unknown prefix is looked up, not added


def test_entries_from_columns_page_and_locate_as_added_ones() -> None:
    prefixes = Prefixes()
    locations = [Location(3, 10 * n, 100 + n) for n in range(5)]
    _, packed = ckpt.columns(prefixes, "/queue/a", [f"m{n}" for n in range(5)], locations)
    entries = QueueEntries.of(prefixes, packed, first=7)
    assert entries.after(None, 2) == [(7, "m0"), (8, "m1")] and entries.after(9, 10)[0] == (10, "m3")
    assert entries.locate("m4") == Location(3, 40, 104) and entries.position("m2") == 9
    assert entries.remove("m0") == locations[0] and entries.locate("m0") is None


def v1_checkpoint(queues: list[tuple[str, list[str], list[Location]]]) -> bytes:
    """A checkpoint as version 1 wrote it: the map packed whole, [id, file, offset, length] entries."""
    body = {"epoch": 2, "pos": [4, 99], "files": [[1, 10], [4, None]],
            "queues": [[q, [[mid, *loc] for mid, loc in zip(ids, locs, strict=True)]]
                       for q, ids, locs in queues],
            "subs": [], "producers": ["p"]}
    payload = msgpack.packb(body, use_bin_type=True)
    return ckpt.MAGIC_V1 + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload


def test_a_version_1_checkpoint_loads_as_the_same_messages() -> None:
    # An upgrade: the data directory's checkpoint is version 1; the index it loads is the same.
    queues = [(f"/queue/{count}", [message_id(n) for n in range(count)][::-1 if count % 2 else 1],
               [Location(n % 3 + 1, n * 1000, 500 + n) for n in range(count)])
              for count in (1, 15, 16, 8191, 8192, 8193, 20_000)]
    cp = ckpt.decode(v1_checkpoint(queues))
    index = Index(0)
    index.load(cp.prefixes, cp.queues)
    assert [(q, list(entries.items())) for q, entries in index.queues.items()] == [
        (q, list(zip(ids, locs, strict=True))) for q, ids, locs in queues]
    assert index.messages == sum(len(ids) for _, ids, _ in queues)
    again = ckpt.decode(ckpt.encode(cp))  # written back as version 3
    assert again.queues == cp.queues and again.prefixes == cp.prefixes and again.records == ({}, {})


def test_a_checkpoint_streamed_to_its_file_is_what_encode_gives(tmp_path: Path) -> None:
    prefixes = Prefixes()
    locations = [Location(n % 3 + 1, n * 1000, 500 + n) for n in range(70_000)]
    cp = ckpt.Checkpoint(epoch=2, pos=(4, 99), files={1: 10, 4: None}, producers=["p"],
                         queues=[ckpt.columns(prefixes, "/queue/a", list(map(message_id, range(70_000))),
                                              locations)], prefixes=prefixes.names,
                         records=({1: (1, 10), 2: (3, 30)}, {1 << 40: [2, 500]}))
    ckpt.write(tmp_path / "cp", cp)
    assert (tmp_path / "cp").read_bytes() == ckpt.encode(cp) and ckpt.decode(ckpt.encode(cp)) == cp
    assert not list(tmp_path.glob("*.tmp"))


def v2_checkpoint(prefixes: list[str], keys: list[int], extras: list[list[object]],
                  place: int = 1 << 40) -> bytes:
    body = {"epoch": 1, "pos": [1, 0], "files": [[1, None]], "prefixes": prefixes,
            "queues": [["/queue/a", array("q", keys).tobytes(), array("q", [place] * len(keys)).tobytes(),
                        array("I", [9] * len(keys)).tobytes(), extras]],
            "held": [[1, len(keys), 9 * len(keys)]], "shared": [], "subs": [], "producers": []}
    payload = msgpack.packb(body, use_bin_type=True)
    return ckpt.MAGIC_V2 + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload


@pytest.mark.parametrize(("prefixes", "keys", "extras", "fault"), [
    (["m"], [0, 2, 1], [], "not increasing"),
    (["m"], [0, 1, 1], [], "not increasing"),
    (["m"], [0, 1 << 40], [], "out of range"),  # prefix number 1 of a table of one
    (["m"], [0, 1], [[1, "m0"]], "repeated"),  # an extra that is a keyed id
    (["m"], [0, 1, 1], [[2, "x"], [1, "x"]], "out of order"),
    (["m"], [0, 1], [[2, "x"]], "out of order or range"),
    (["m1"], [], [], "ends in a digit"),
    (["m", "m"], [], [], "repeated"),
])
def test_a_damaged_version_2_queue_is_refused(prefixes: list[str], keys: list[int],
                                               extras: list[list[object]], fault: str) -> None:
    assert ckpt.decode(v2_checkpoint(["m"], [0, 1], [[1, "x"]])).queues[0][1].extras == [(1, "x")]
    with pytest.raises(ckpt.CheckpointError, match=fault):
        ckpt.decode(v2_checkpoint(prefixes, keys, extras))


# A record: (file, [(op, queue, message number)]); op a = add, r = remove, m = move here.
record = st.tuples(st.integers(1, 4), st.lists(st.tuples(st.sampled_from("aarm"), st.sampled_from("xyz"),
                                                         st.integers(0, 12)), min_size=1, max_size=6))


def distinct_records(index: Index) -> Counter[int]:
    """What compaction measures, worked out the slow way: the distinct live records' bytes per file."""
    records = {pair for entries in index.queues.values() for pair in entries.placed()}
    found: Counter[int] = Counter()
    for at, length in records:
        found[at >> 40] += length
    return found


@given(st.lists(record, max_size=60))
def test_the_bytes_of_live_records_are_kept_exactly_as_records_come_and_go(script) -> None:  # type: ignore[no-untyped-def]
    index = Index(0)
    offsets = Counter[int]()
    for file, ops in script:
        loc = Location(file, offsets[file], 100 + 7 * len(ops))
        offsets[file] += loc.length
        batch = []
        for op, queue, n in ops:
            stored = StoredMessage(message_id(n), f"/queue/{queue}", {}, b"")
            batch.append(AddMessage(stored.destination, stored) if op == "a" else
                         RemoveMessage(stored.destination, stored.message_id) if op == "r" else
                         Move(stored.destination, stored))
        index.apply(batch, loc)
        assert index.live_bytes() == +distinct_records(index)
    # A checkpoint carries them; a version 1 checkpoint's load works them out.
    cp = ckpt.decode(ckpt.encode(ckpt.snapshot(index, 1, (5, 0), {5: None})))
    for records in (cp.records, None):
        loaded = Index(0)
        loaded.load(cp.prefixes, cp.queues, records)
        assert loaded.live_bytes() == index.live_bytes() and loaded.live == index.live
        for queue, entries in list(loaded.queues.items()):  # and every removal takes its share away
            loaded.apply([RemoveMessage(queue, mid) for mid in list(entries)], Location(9, 0, 1))
        assert not loaded.live_bytes() and not loaded.shared


def test_a_version_2_place_out_of_range_is_refused() -> None:
    with pytest.raises(ckpt.CheckpointError, match="location is out of range"):
        ckpt.decode(v2_checkpoint(["m"], [0, 1], [], place=-(1 << 40)))


def test_blocks_of_consecutive_positions_share_one_column() -> None:
    block = QueueEntries.BLOCK
    alone, shared = QueueEntries(), QueueEntries()
    for n in range(3 * block + 1):  # `alone` is one queue's backlog; `shared` interleaves with another
        alone.add(f"ID:a-{n}", n, Location(1, n * 10, 10))
        shared.add(f"ID:b-{n}", 2 * n, Location(1, n * 10, 10))
    blocks = alone._state[0]
    assert len(blocks) == 3 and blocks[0].positions is blocks[2].positions
    assert shared._state[0][0].positions is not shared._state[0][1].positions
    assert [alone.position(f"ID:a-{n}") for n in (0, block, 3 * block - 1)] == [0, block, 3 * block - 1]
    assert [shared.position(f"ID:b-{n}") for n in (1, block + 1)] == [2, 2 * block + 2]
    assert [p for p, _ in alone.after(block - 2, 3)] == [block - 1, block, block + 1]
