"""A store workload in its own process, to be killed with SIGKILL at a random moment.

    python -m tests.helpers.storeproc KIND DATA_DIR RUN SEED [WRITERS] [MAX_OPS]

Opens the store, prints "READY", then runs WRITERS coroutines. Writer w adds messages with unique
ids `r{RUN}w{w}-{i}` (i = 0, 1, ...) to queue `/queue/crash{w % 3}` and, now and then, removes
one of its own earlier acknowledged adds. After each awaited write returns it prints one line and
flushes, so an ACK line means "acknowledged"; a BEGIN line is printed before each write starts,
so the test also knows which writes may have happened without an acknowledgement:

    BEGIN add QUEUE ID      ACK add QUEUE ID
    BEGIN rm QUEUE ID       ACK rm QUEUE ID

STOREPROC_CHECKPOINT_INTERVAL in the environment sets store.checkpoint_interval (seconds): a
short one puts checkpoint writes where the kill can land in them.

Each writer awaits one write at a time, so at most one unacknowledged operation per writer is
in flight when the process dies. Bodies are derived from the id (`body_for`), so the test can
tell a genuine message from garbage. Stops by itself after MAX_OPS operations per writer.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from config.model import StoreSettings
from stores.base import Store, StoredMessage
from stores.registry import create_store

REMOVE_CHANCE = 0.3


def message_id(run: int, writer: int, index: int) -> str:
    return f"r{run}w{writer}-{index}"


def queue_of(writer: int) -> str:
    return f"/queue/crash{writer % 3}"


def body_for(mid: str) -> bytes:
    return (mid.encode() + b"\x00") * (1 + len(mid) % 7)


def say(line: str) -> None:
    # One write per line: lines from different writers never interleave within a line.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def writer(store: Store, run: int, w: int, seed: int, max_ops: int) -> None:
    rng = random.Random(f"{seed}/{w}")
    queue = queue_of(w)
    live: list[str] = []
    index = 0
    for _ in range(max_ops):
        if live and rng.random() < REMOVE_CHANCE:
            victim = live.pop(rng.randrange(len(live)))
            say(f"BEGIN rm {queue} {victim}")
            await store.remove(queue, victim)
            say(f"ACK rm {queue} {victim}")
        else:
            mid = message_id(run, w, index)
            index += 1
            msg = StoredMessage(mid, queue, {"persistent": "true", "writer": str(w)}, body_for(mid))
            say(f"BEGIN add {queue} {mid}")
            await store.enqueue(queue, msg)
            live.append(mid)
            say(f"ACK add {queue} {mid}")


async def main(argv: list[str]) -> None:
    kind, data_dir, run, seed = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    writers = int(argv[4]) if len(argv) > 4 else 8
    max_ops = int(argv[5]) if len(argv) > 5 else 20000
    values: dict[str, object] = {"type": kind, "sync": "always"}
    if interval := os.environ.get("STOREPROC_CHECKPOINT_INTERVAL"):
        values["checkpoint_interval"] = float(interval)
    store = create_store(data_dir, StoreSettings.model_validate(values))
    await store.open()
    say("READY")
    try:
        await asyncio.gather(*(writer(store, run, w, seed, max_ops) for w in range(writers)))
    finally:
        await store.close()
    say("DONE")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
