"""The memory budget's bookkeeping (transports/memory.py): shares, limits, reserves, listeners; no I/O."""

from __future__ import annotations

from config.model import Limits
from transports.memory import MemoryBudget, MiB, refusal

KiB = 1024


def test_a_charge_counts_in_every_share_up_to_the_budget_and_a_release_gives_it_back() -> None:
    budget = MemoryBudget(64 * MiB, 8 * MiB)
    conn = budget.connection("127.0.0.1:1")
    queue = budget.destination("/queue/a", 1024 * MiB)
    conn.charge(3 * MiB)
    queue.charge(5 * MiB)
    assert (conn.used, budget.inbound.used, queue.used, budget.used) == (3 * MiB, 3 * MiB, 5 * MiB, 8 * MiB)
    conn.release(MiB)
    queue.set(2 * MiB)
    assert (budget.inbound.used, budget.used) == (2 * MiB, 4 * MiB)
    conn.close()
    queue.close()
    assert budget.used == 0 and budget.inbound.used == 0


def test_a_destination_share_is_never_larger_than_the_budget() -> None:
    budget = MemoryBudget(64 * MiB, 8 * MiB)
    assert budget.destination("/queue/a", 1024 * MiB).limit == 64 * MiB
    assert budget.destination("/queue/b", 4 * MiB).limit == 4 * MiB


def test_blocked_names_the_first_full_share_on_the_way_up() -> None:
    budget = MemoryBudget(64 * MiB, 8 * MiB)
    queue = budget.destination("/queue/a", 4 * MiB)
    queue.charge(4 * MiB)
    assert queue.blocked(1) is queue and queue.blocked(0) is None  # at its limit, not past it
    other = budget.destination("/queue/b", 1024 * MiB)
    other.charge(60 * MiB)
    assert other.blocked(1) is budget  # its own share has room, the broker has not
    assert queue.blocked(1) is queue


def test_connections_together_may_take_half_the_budget_and_a_small_one_is_never_blocked_by_it() -> None:
    budget = MemoryBudget(64 * MiB, 32 * MiB, reserve=64 * KiB)
    hogs = [budget.connection(f"h{i}") for i in range(3)]
    for hog in hogs:
        hog.charge(11 * MiB)  # 33 MiB: past the inbound pool's 32 MiB
    assert hogs[0].blocked() is budget.inbound
    small = budget.connection("victim")
    small.charge(10 * KiB)
    assert small.blocked(10 * KiB) is None  # under its reserve: the pool being full does not stop it
    assert small.blocked(100 * KiB) is budget.inbound
    # Messages still have the other half: a queue is not blocked by what connections hold.
    assert budget.destination("/queue/v", MiB).blocked(1024) is None


def test_a_connection_past_its_own_limit_is_blocked_by_its_own_share() -> None:
    budget = MemoryBudget(256 * MiB, 8 * MiB)
    conn = budget.connection("c")
    conn.charge(9 * MiB)
    assert conn.blocked() is conn
    message, detail = refusal(conn, 10.0)
    assert message == "memory limit reached (limits.connection_memory_limit)"
    assert "connection c holds 9 MiB of its 8 MiB" in detail and "10 s" in detail


def test_listeners_fire_once_when_a_release_leaves_their_share_under_its_limit() -> None:
    budget = MemoryBudget(16 * MiB, 8 * MiB)
    queue = budget.destination("/queue/a", 2 * MiB)
    queue.charge(3 * MiB)
    calls: list[str] = []
    queue.listen(lambda: calls.append("queue"))
    budget.listen(lambda: calls.append("budget"))
    queue.release(512 * KiB)  # still over its limit: nobody woken
    assert calls == ["budget"]  # the budget was under its own limit all along: woken at once
    queue.release(MiB)
    assert calls == ["budget", "queue"]
    queue.release(256 * KiB)
    assert calls == ["budget", "queue"]  # one-shot


def test_an_unlistened_callback_is_not_called_and_closing_wakes_the_rest() -> None:
    budget = MemoryBudget(16 * MiB, 8 * MiB)
    queue = budget.destination("/queue/a", MiB)
    queue.charge(2 * MiB)
    calls: list[int] = []

    def first() -> None:
        calls.append(1)

    queue.listen(first)
    queue.listen(lambda: calls.append(2))
    queue.unlisten(first)
    queue.close()
    assert calls == [2] and budget.used == 0


def test_destination_full_keeps_its_message_and_the_budget_is_named_otherwise() -> None:
    budget = MemoryBudget(64 * MiB, 8 * MiB)
    queue = budget.destination("/queue/a", MiB)
    assert refusal(queue, 0)[0] == "destination full (limits.destination_memory_limit)"
    assert "at once" in refusal(queue, 0)[1]
    assert refusal(budget, 3)[0] == "memory limit reached (limits.memory_budget)"
    assert refusal(budget.inbound, 3)[0] == "memory limit reached (half of limits.memory_budget)"


def test_the_budget_follows_the_limits() -> None:
    budget = MemoryBudget.from_limits(Limits(memory_budget=128 * MiB, connection_memory_limit=4 * MiB))
    limits = (budget.limit, budget.inbound.limit, budget.connection("x").limit)
    assert limits == (128 * MiB, 64 * MiB, 4 * MiB)
    default = MemoryBudget.from_limits(Limits())
    assert default.limit is not None and 64 * MiB <= default.limit <= 4096 * MiB
