"""kill -9 at random moments, real processes: nothing acknowledged is lost, nothing invented.

The workload (tests/helpers/storeproc.py) prints one line per acknowledged write. The test reads
them as they come, SIGKILLs the process at a random moment, drains what it had already printed
(those writes were acknowledged too), reopens the store here and checks it against the acknowledgements. The
data directory is kept across iterations, so later runs also recover what earlier kills left.

BATONMQ_CRASH_ITERATIONS (default 10) and BATONMQ_CRASH_SEED replay or lengthen a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stores.base import Recovered
from tests.helpers.storeproc import body_for, queue_of
from tests.unit.stores.contract import STORE_KINDS, recover, require_store

pytestmark = pytest.mark.slow  # 7-15 s per store: `make check` leaves it to `make test`

REPO = Path(__file__).resolve().parents[3]
ITERATIONS = int(os.environ.get("BATONMQ_CRASH_ITERATIONS", "10"))
ID = re.compile(r"r(\d+)w(\d+)-(\d+)")
LINE_TIMEOUT = 15.0


@dataclass
class Acks:
    adds: set[tuple[str, str]] = field(default_factory=set)
    removes: set[tuple[str, str]] = field(default_factory=set)
    begun_adds: set[tuple[str, str]] = field(default_factory=set)
    begun_removes: set[tuple[str, str]] = field(default_factory=set)
    ready: bool = False
    kill_at = ""
    problem = ""
    exit_code: int | None = None  # when the workload exited by itself

    def take(self, line: str) -> None:
        words = line.split()
        if words == ["READY"]:
            self.ready = True
        elif len(words) == 4 and words[0] in ("ACK", "BEGIN") and words[1] in ("add", "rm"):
            acked = words[0] == "ACK"
            adds, removes = (self.adds, self.removes) if acked else (self.begun_adds, self.begun_removes)
            (adds if words[1] == "add" else removes).add((words[2], words[3]))
        elif words:
            raise AssertionError(f"unexpected line from the workload: {line!r}")

    @property
    def count(self) -> int:
        return len(self.adds) + len(self.removes)


async def drain(stream: asyncio.StreamReader, acks: Acks, ready: asyncio.Event) -> None:
    """Read as fast as the workload writes: a full pipe would stall it and hide the race we want."""
    pending = b""
    while chunk := await stream.read(1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            acks.take(line.decode())
        if acks.ready:
            ready.set()
    # A partial last line would be an acknowledgement never fully reported: not counted.


async def run_and_kill(kind: str, data_dir: Path, run: int, seed: int, rng: random.Random, log: Path) -> Acks:
    acks = Acks()
    ready = asyncio.Event()
    with open(log, "ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.helpers.storeproc", kind, str(data_dir), str(run), str(seed),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert proc.stdout is not None
    reader = asyncio.create_task(drain(proc.stdout, acks, ready))
    try:
        if rng.random() < 0.15:
            delay = rng.uniform(0.0, 0.6)
            acks.kill_at = f"{delay:.3f} s after start (while opening)"
            await asyncio.sleep(delay)
        else:
            delay = rng.uniform(0.0, 0.8)
            acks.kill_at = f"{delay:.3f} s after READY"
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([waiter, reader], timeout=LINE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not ready.is_set() and not reader.done():
                acks.problem = f"no READY within {LINE_TIMEOUT} s"
            await asyncio.sleep(delay)
    finally:
        if proc.returncode is None:
            proc.kill()
        # Everything printed before the kill was acknowledged as well: read to EOF, then wait
        # (asyncio's wait() also waits for the pipe to close).
        await asyncio.wait_for(reader, LINE_TIMEOUT)
        code = await asyncio.wait_for(proc.wait(), LINE_TIMEOUT)
        if code != -signal.SIGKILL:
            acks.exit_code = code
    return acks


def parse(mid: str) -> tuple[int, int, int]:
    match = ID.fullmatch(mid)
    assert match, f"{mid!r} is not an id the workload ever writes"
    run, writer, index = (int(g) for g in match.groups())
    return run, writer, index


def check(recovered: Recovered, acks: Acks, baseline: set[tuple[str, str]], run: int) -> set[tuple[str, str]]:
    """Return what is present; raise AssertionError naming what is wrong."""
    present: set[tuple[str, str]] = set()
    for queue, messages in recovered.queues.items():
        # The workload's queues are far below cursor_window, so each head is its whole queue and a
        # store's depth (LevelDB's d/ counters) must count exactly it.
        assert recovered.depth(queue) == len(messages), (
            f"{queue}: depth {recovered.depth(queue)}, but it holds {len(messages)}"
        )
        last: dict[tuple[int, int], int] = {}
        for m in messages:
            assert (queue, m.message_id) not in present, f"{m.message_id} twice in {queue}"
            present.add((queue, m.message_id))
            r, w, i = parse(m.message_id)
            assert queue == queue_of(w) and m.destination == queue, f"{m.message_id} in the wrong queue"
            assert m.body == body_for(m.message_id), f"{m.message_id} has a damaged body"
            # A writer's adds go out one after another, so they are stored in index order.
            assert last.get((r, w), -1) < i, f"{queue} out of order at {m.message_id}"
            last[(r, w)] = i
    # An acknowledged add may be gone only if its writer had begun (not finished) removing it.
    lost = (baseline | acks.adds) - acks.begun_removes - present
    assert not lost, f"acknowledged but lost: {sorted(lost)[:10]} ({len(lost)} in all)"
    back = acks.removes & present
    assert not back, f"acknowledged remove undone: {sorted(back)[:10]}"
    unknown = present - baseline - acks.begun_adds
    assert not unknown, f"never written, yet present: {sorted(unknown)[:10]}"
    return present


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_kill9_loses_nothing_acknowledged(kind: str, tmp_path: Path) -> None:
    require_store(kind)
    seed = int(os.environ.get("BATONMQ_CRASH_SEED", random.randrange(2**32)))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    baseline: set[tuple[str, str]] = set()
    for run in range(ITERATIONS):
        rng = random.Random(f"{seed}/{kind}/{run}")
        log = tmp_path / f"storeproc-{run}.log"
        acks = await run_and_kill(kind, data_dir, run, seed, rng, log)
        where = (
            f"store={kind} seed={seed} (BATONMQ_CRASH_SEED={seed} to replay) run={run} "
            f"killed {acks.kill_at}; acked adds={len(acks.adds)} removes={len(acks.removes)}\n"
            f"workload stderr:\n"
            f"{log.read_text(errors='replace')[-2000:]}"
        )
        try:
            assert acks.exit_code is None, f"the workload exited by itself with code {acks.exit_code}"
            assert not acks.problem, acks.problem
            recovered = await recover(kind, data_dir)
            baseline = check(recovered, acks, baseline, run)
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}\n{where}") from exc
