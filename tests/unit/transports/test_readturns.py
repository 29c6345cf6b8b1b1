"""The loop-wide allowance of bulk reads per turn (transports/readturns.py)."""

from __future__ import annotations

import asyncio

from transports.readturns import BULK_READ, READ_TURN, TYPICAL_READ, ReadTurns, turns_for


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_small_reads_are_never_counted() -> None:
    turns = ReadTurns(asyncio.get_running_loop())
    assert all(turns.spend(BULK_READ - 1) for _ in range(10_000))
    assert turns.may_read()


async def test_bulk_reads_past_the_allowance_are_told_to_wait_and_a_new_turn_refills_it() -> None:
    turns = ReadTurns(asyncio.get_running_loop())
    reads = [turns.spend(TYPICAL_READ) for _ in range(READ_TURN // TYPICAL_READ + 2)]
    assert reads[:READ_TURN // TYPICAL_READ] == [True] * (READ_TURN // TYPICAL_READ)
    assert reads[-2:] == [False, False]
    assert not turns.may_read()
    await _turns(2)
    assert turns.may_read() and turns.spend(TYPICAL_READ)


async def test_waiting_readers_resume_in_order_a_few_per_turn() -> None:
    turns = ReadTurns(asyncio.get_running_loop())
    turns.spend(READ_TURN + 1)
    resumed: list[int] = []
    for n in range(10):
        turns.wait(lambda n=n: resumed.append(n))
    assert not turns.may_read()  # others wait: a newcomer goes behind them
    per_turn = READ_TURN // TYPICAL_READ
    await _turns(1)
    assert resumed == list(range(per_turn))
    await _turns(5)
    assert resumed == list(range(10)) and turns.waiting == 0 and turns.deferred == 10


async def test_one_allowance_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert turns_for(loop) is turns_for(loop)
