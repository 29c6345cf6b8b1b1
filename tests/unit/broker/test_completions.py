"""Ordered completions run in slices: a group commit's hundreds of completions yield to the loop."""

from __future__ import annotations

import asyncio
import time

from broker.engine.ordering import Completions


async def test_a_burst_of_ready_completions_yields_to_the_loop_and_keeps_its_order() -> None:
    completions = Completions(10_000, slice_seconds=0.001)
    loop = asyncio.get_running_loop()
    write: asyncio.Future[None] = loop.create_future()
    ran: list[int] = []
    turns: list[int] = []  # how many completions had run each time another callback got a turn

    def complete(n: int) -> None:
        time.sleep(0.0001)  # 0.1 ms of work each: 10 per slice
        ran.append(n)

    for n in range(200):
        completions.add(write, lambda error, n=n: complete(n))

    def other() -> None:
        turns.append(len(ran))
        if len(ran) < 200:
            loop.call_soon(other)

    write.set_result(None)  # the group commit: all 200 are ready at once
    loop.call_soon(other)
    await asyncio.wait_for(completions.idle(), 5)
    assert ran == list(range(200))
    assert len(turns) >= 10 and max(b - a for a, b in zip(turns, turns[1:], strict=False)) <= 40


async def test_a_completion_added_while_the_rest_waits_for_a_later_slice_runs_after_it() -> None:
    completions = Completions(10_000, slice_seconds=0.0)  # one completion per turn
    ran: list[str] = []
    for name in ("a", "b", "c"):
        completions.add(None if name == "a" else asyncio.get_running_loop().create_future(),
                        lambda error, name=name: ran.append(name))
    assert ran == ["a"]
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    completions.add(done, lambda error: ran.append("d"))  # must wait behind b and c
    assert ran == ["a"]
    completions.cancel()
