"""A queue's store order with positions (stores/order.py), beside a plain list."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stores.order import QueueOrder


def test_order_pages_resume_after_removed_positions() -> None:
    order = QueueOrder()
    for n in range(10):
        order.add(f"m{n}", 10 * n)
    assert order.after(None, 3) == [(0, "m0"), (10, "m1"), (20, "m2")]
    for n in range(5):
        order.remove(f"m{n}")
    assert order.after(20, 2) == [(50, "m5"), (60, "m6")]  # position 20's message is gone
    assert order.after(45, 100) == [(50, "m5"), (60, "m6"), (70, "m7"), (80, "m8"), (90, "m9")]
    order.add("m5", 100)  # added again: it moves last
    assert [mid for _, mid in order.after(None, 100)] == ["m6", "m7", "m8", "m9", "m5"]
    assert order.position("m5") == 100 and order.position("m0") is None and len(order) == 5


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=400), st.integers(1, 7))
def test_order_matches_a_list_through_many_removals(steps: list[tuple[bool, int]], limit: int) -> None:
    order = QueueOrder()
    model: list[tuple[int, str]] = []  # live (position, id), in order
    for position, (add, n) in enumerate(steps):
        message_id = f"m{n}"
        model = [(p, mid) for p, mid in model if mid != message_id]
        order.remove(message_id)
        if add:
            order.add(message_id, position)
            model.append((position, message_id))
    assert len(order) == len(model)
    got: list[tuple[int, str]] = []
    after: int | None = None
    while page := order.after(after, limit):
        got.extend(page)
        after = page[-1][0]
    assert got == model
    for p, mid in model:
        assert order.position(mid) == p


def test_order_after_a_position_before_the_start_past_the_end_or_in_a_gap() -> None:
    order = QueueOrder()
    assert order.after(None, 5) == []
    order.add("a", 5)
    order.add("b", 7)
    assert order.after(0, 5) == [(5, "a"), (7, "b")]
    assert order.after(6, 1) == [(7, "b")]
    assert order.after(7, 5) == [] and order.after(100, 5) == []
    order.remove("a")
    order.remove("b")
    order.remove("b")  # removal is idempotent
    assert len(order) == 0 and order.after(None, 5) == [] and order.position("a") is None
