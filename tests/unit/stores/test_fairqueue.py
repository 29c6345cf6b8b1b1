"""The fair queue of pending writes (stores/fairqueue.py): shares, order per source, barriers."""

from __future__ import annotations

import random

import pytest

from stores.fairqueue import ORDERED, FairQueue


def test_a_source_alone_takes_up_to_the_limit() -> None:
    q: FairQueue[int] = FairQueue(share=4, limit=10)
    for i in range(15):
        q.push("flood", i)
    assert q.take() == list(range(10))
    assert q.take() == list(range(10, 15))
    assert not q and q.take() == []


def test_a_one_write_source_goes_into_the_next_group_first() -> None:
    q: FairQueue[str] = FairQueue(share=4, limit=100)
    for i in range(128):
        q.push("flood", f"f{i}")
    q.push("victim", "v0")
    group = q.take()
    assert group == ["v0", "f0", "f1", "f2", "f3"]  # the smallest portion first, the flood bounded
    assert len(q) == 124


def test_busy_sources_take_turns_under_the_limit() -> None:
    q: FairQueue[tuple[str, int]] = FairQueue(share=3, limit=6)
    for source in "abc":
        for i in range(6):
            q.push(source, (source, i))
    first, second = q.take(), q.take()
    assert [s for s, _ in first] == ["a"] * 3 + ["b"] * 3
    assert [s for s, _ in second] == ["c"] * 3 + ["a"] * 3  # c was left out once: it goes first


def test_each_source_keeps_its_order_and_nothing_is_lost() -> None:
    rng = random.Random(7)
    q: FairQueue[tuple[int, int]] = FairQueue(share=5, limit=40)
    pushed = {s: 0 for s in range(6)}
    taken: list[tuple[int, int]] = []
    for _ in range(200):
        for _ in range(rng.randrange(30)):
            source = rng.choice([0, 0, 0, 1, 2, 3, 4, 5])
            q.push(source, (source, pushed[source]))
            pushed[source] += 1
        group = q.take()
        assert len(group) <= 40
        taken.extend(group)
    while q:
        taken.extend(q.take())
    for source, count in pushed.items():
        assert [i for s, i in taken if s == source] == list(range(count))
    assert len(q) == 0


def test_an_ordered_write_waits_for_everything_before_it_and_holds_back_what_follows() -> None:
    q: FairQueue[str] = FairQueue(share=2, limit=100)
    for i in range(5):
        q.push("a", f"a{i}")
    q.push("b", "b0")
    q.push(ORDERED, "barrier")
    q.push("c", "c0")
    q.push("a", "a5")
    assert q.take() == ["b0", "a0", "a1"]  # c0 and a5 wait for the barrier, the barrier for a2..a4
    assert q.take() == ["a2", "a3", "a4", "barrier"]  # a alone before it: its share is the limit
    assert q.take() == ["c0", "a5"]


def test_ordered_writes_in_a_row_keep_their_order_among_the_others() -> None:
    rng = random.Random(11)
    q: FairQueue[int] = FairQueue(share=3, limit=20)
    sources = ["x", "y", ORDERED]
    order: list[tuple[object, int]] = []
    for n in range(300):
        source = rng.choice(sources)
        q.push(source, n)
        order.append((source, n))
    written: list[int] = []
    while q:
        written.extend(q.take())
    assert sorted(written) == list(range(300))
    position = {n: i for i, n in enumerate(written)}
    for i, (source, n) in enumerate(order):
        if source is ORDERED:  # everything pushed before it is written before it, the rest after
            assert all(position[m] < position[n] for _, m in order[:i])
            assert all(position[m] > position[n] for _, m in order[i + 1:])


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        FairQueue(share=0, limit=10)
    with pytest.raises(ValueError):
        FairQueue(share=20, limit=10)
