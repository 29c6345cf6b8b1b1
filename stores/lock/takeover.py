"""Safe takeover (design §2): after taking the lock, bind nothing until the previous master is gone.

Holding the lock proves only that nobody holds *that file's* lock now. The previous master may
be merely cut off (lock file replaced, NFSv4 lease expired) or paused. So we look at its
heartbeat (stores.lock.heartbeat) and wait for one of:

1. no heartbeat file: there never was a master that served;
2. the record says it released cleanly;
3. it ran on this host and its pid no longer exists (pids are only meaningful per host);
4. the record has not changed for `stale_after` plus a margin, timed with *our* monotonic
   clock (hosts' wall clocks differ). `stale_after` is the larger of our own lock_timeout and
   the one the previous master recorded: a master that has verified nothing for its
   lock_timeout has stopped serving (docs/lock-protocol.md, "The arithmetic"). An unreadable
   record counts as "unknown": we wait the same way.

Blocking and thread-safe: run it in an executor. `clock`, `sleep` and `is_pid_alive` are
injectable so tests can drive it; pass `sleep=event.wait` and `abort=event` to make it
interruptible.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from config.errors import BrokerError
from stores.lock.heartbeat import decode, read_raw

_UNREADABLE = b""  # stands for "no record or an I/O error" when comparing successive reads


class TakeoverAborted(BrokerError):
    """The wait for the previous master was abandoned (the broker is stopping)."""


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host; a zombie counts as gone (it holds nothing)."""
    if pid <= 0:
        return True  # not a pid we can reason about: assume the worst
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(1024)
    except OSError:
        return True
    # The state letter follows the command name in parentheses (proc(5)); Z = zombie, X = dead.
    fields = stat.rpartition(b")")[2].split()
    return not (fields and fields[0] in (b"Z", b"X"))


def _read(data_dir: Path) -> bytes | None:
    try:
        return read_raw(data_dir)
    except OSError:
        return _UNREADABLE


def _gone_by_record(raw: bytes, my_host: str, is_pid_alive: Callable[[int], bool]) -> str | None:
    beat = decode(raw)
    if beat is None:
        return None
    if beat.released:
        return "previous master released cleanly"
    if beat.host == my_host and not is_pid_alive(beat.pid):
        return f"previous master's pid {beat.pid} no longer exists on this host"
    return None


def quiet_needed(raw: bytes, stale_after: float, margin: float) -> float:
    """How long record `raw` must stay unchanged before its writer is known to have stopped."""
    beat = decode(raw)
    recorded = beat.stale_after if beat is not None else 0.0
    return max(stale_after, recorded) + margin


def previous_master_gone(
    data_dir: Path,
    my_host: str,
    stale_after: float,
    margin: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
    is_pid_alive: Callable[[int], bool] = pid_alive,
    poll_interval: float | None = None,
    abort: threading.Event | None = None,
) -> str:
    """Block until the previous master is known gone; return why (for the log)."""
    poll = poll_interval if poll_interval is not None else min(max(margin / 5, 0.01), 0.5)
    raw = _read(data_dir)
    if raw is None:
        return "no previous master"
    changed_at = clock()
    while True:
        reason = _gone_by_record(raw, my_host, is_pid_alive)
        if reason is not None:
            return reason
        needed = quiet_needed(raw, stale_after, margin)
        quiet = clock() - changed_at
        if quiet >= needed:
            return f"previous master's heartbeat stale for {quiet:.1f} s"
        if abort is not None and abort.is_set():
            raise TakeoverAborted("stopped while waiting for the previous master to go")
        sleep(min(poll, needed - quiet))
        fresh = _read(data_dir)
        fresh = _UNREADABLE if fresh is None else fresh  # deleted mid-wait: unknown, not "none"
        if fresh != raw:
            raw, changed_at = fresh, clock()
