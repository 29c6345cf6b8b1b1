"""Two-host mode: two `batonmq fscheck DIR --peer` instances test each other's lock, through files only.

No network: the two hosts may share nothing but the mount, as brokers do. The exchange, all in
`DIR/.batonmq-fscheck/peer/`:

1. Each instance writes `hello-<id>.json` (host, pid, a random id) and polls the directory for
   the other's, up to `--wait-for-peer` seconds. Announcements much older than our own (by the
   server's clock: both mtimes are set by the same file server) are leftovers and are ignored.
2. Roles are elected deterministically: the smaller id is `first`. Both use
   `session-<first id>-<second id>/`, whose `lock` file is the lock under test.
3. Round 1: first takes the lock, publishes its identity and writes `holding-1`; second tries to
   take the lock (it must fail), reads the identity, and writes `result-1`; first releases and
   writes `released-1`. Round 2 swaps the roles. Every wait is bounded.
4. First removes the session directory after `released-2`; each removes its own announcement.

Each step file is written whole and renamed into place, so a reader never sees half of one. On
NFS, close-to-open consistency makes a freshly opened file's content current; a new file's name
may take up to the directory attribute cache time (acdirmax, 60 s by default) to appear, which is
why the default `--wait-for-peer` is generous.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores.fsio import sync_directory
from stores.lock.directory import DirectoryLock, read_holder
from stores.lock.identity import Holder

PEER_DIR = "peer"
MAX_FILE = 4096  # bytes of a step file or announcement we read
MAX_ANNOUNCEMENTS = 1000  # directory entries examined per poll
_POLL = 0.05
_STALE_SLACK = 5.0  # seconds beyond --wait-for-peer before an announcement counts as a leftover


@dataclass(frozen=True)
class Instance:
    id: str
    host: str
    pid: int

    def describe(self) -> str:
        return f"host {self.host} pid {self.pid}"

    @classmethod
    def me(cls) -> Instance:
        return cls(secrets.token_hex(8), socket.gethostname() or "localhost", os.getpid())

    @classmethod
    def from_fields(cls, raw: Any) -> Instance | None:
        if not isinstance(raw, dict):
            return None
        ident, host, pid = raw.get("id"), raw.get("host"), raw.get("pid")
        if not (isinstance(ident, str) and 0 < len(ident) <= 64 and ident.isalnum()):
            return None
        if not (isinstance(host, str) and 0 < len(host) <= 255 and isinstance(pid, int)):
            return None
        return cls(ident, host, pid)


@dataclass
class PeerOutcome:
    ok: bool
    explanation: str
    advice: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class PeerFailed(Exception):
    """A step of the exchange failed or timed out; the message says which."""


def _write(directory: Path, name: str, content: dict[str, Any], me: Instance) -> None:
    tmp = directory / f".{name}.{me.id}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(content, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    sync_directory(directory)


def _read(path: Path) -> Any:
    """The JSON in `path`, or None if it is absent or not (yet) valid."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(data) > MAX_FILE:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _wait_for(directory: Path, name: str, timeout: float, peer: Instance) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = _read(directory / name)
        if isinstance(found, dict):
            return found
        if time.monotonic() >= deadline:
            raise PeerFailed(f"the peer ({peer.describe()}) wrote no '{name}' within {timeout:g} s")
        time.sleep(_POLL)


def find_peer(peer_dir: Path, me: Instance, wait: float) -> Instance:
    """Announce ourselves and return the one other fresh announcement; PeerFailed otherwise."""
    _write(peer_dir, f"hello-{me.id}.json", {"id": me.id, "host": me.host, "pid": me.pid}, me)
    mine = (peer_dir / f"hello-{me.id}.json").stat().st_mtime
    deadline = time.monotonic() + wait
    while True:
        others = _fresh_announcements(peer_dir, me, mine - wait - _STALE_SLACK)
        if len(others) > 1:
            names = ", ".join(o.describe() for o in others)
            raise PeerFailed(f"more than one other instance is announced in {peer_dir}: {names}")
        if others:
            return others[0]
        if time.monotonic() >= deadline:
            raise PeerFailed(f"no peer announced itself in {peer_dir} within {wait:g} s")
        time.sleep(_POLL * 2)


def _fresh_announcements(peer_dir: Path, me: Instance, oldest: float) -> list[Instance]:
    found = []
    with os.scandir(peer_dir) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_ANNOUNCEMENTS:
                break
            if not (entry.name.startswith("hello-") and entry.name.endswith(".json")):
                continue
            try:
                if entry.stat().st_mtime < oldest:
                    continue  # a leftover of an earlier run
            except FileNotFoundError:
                continue
            other = Instance.from_fields(_read(Path(entry.path)))
            if other is not None and other.id != me.id:
                found.append(other)
    return found


def _hold_round(session: Path, me: Instance, peer: Instance, rnd: int, timeout: float) -> dict[str, Any]:
    lock = DirectoryLock(session)
    try:
        if not lock.wait_acquire(timeout):
            raise PeerFailed(f"round {rnd}: could not take the lock within {timeout:g} s")
        holder = Holder(f"fscheck-{me.id}", me.host, me.pid, time.time(), rnd)
        lock.publish(holder)
        _write(session, f"holding-{rnd}", json.loads(holder.to_json()), me)
        result = _wait_for(session, f"result-{rnd}", timeout, peer)
    finally:
        lock.release()
    _write(session, f"released-{rnd}", {}, me)
    return result


def _test_round(session: Path, me: Instance, peer: Instance, rnd: int, timeout: float) -> dict[str, Any]:
    expected = Holder.from_json(json.dumps(_wait_for(session, f"holding-{rnd}", timeout, peer)))
    lock = DirectoryLock(session)
    acquired = lock.try_acquire()
    seen = read_holder(session)
    lock.release()
    result = {
        "acquired": acquired,
        "identity_seen": seen is not None and seen == expected,
        "tester": me.describe(),
    }
    _write(session, f"result-{rnd}", result, me)
    return result


def run_peer(root: Path, wait: float, step_timeout: float = 30.0) -> PeerOutcome:
    """The whole two-host exchange from this instance's side (module docstring)."""
    peer_dir = root / PEER_DIR
    peer_dir.mkdir(parents=True, exist_ok=True)
    me = Instance.me()
    try:
        peer = find_peer(peer_dir, me, wait)
        return _exchange(peer_dir, me, peer, step_timeout)
    except PeerFailed as exc:
        return PeerOutcome(
            False,
            str(exc),
            "start `batonmq fscheck DIR --peer` on both hosts within "
            "--wait-for-peer seconds of each other, on the same shared directory",
            {"me": me.describe()},
        )
    finally:
        (peer_dir / f"hello-{me.id}.json").unlink(missing_ok=True)


def _exchange(peer_dir: Path, me: Instance, peer: Instance, timeout: float) -> PeerOutcome:
    first, second = sorted((me, peer), key=lambda i: i.id)
    session = peer_dir / f"session-{first.id}-{second.id}"
    session.mkdir(exist_ok=True)
    try:
        one, two = _rounds(session, me, peer, me is first, timeout)
    except PeerFailed:
        shutil.rmtree(session, ignore_errors=True)  # the exchange is over for both sides
        raise
    details = {
        "me": me.describe(),
        "peer": peer.describe(),
        "role": "first" if me is first else "second",
        "round_1": {"holder": first.describe(), **one},
        "round_2": {"holder": second.describe(), **two},
    }
    broken = [n for n, r in ((1, one), (2, two)) if r.get("acquired") is not False]
    if broken:
        holder, tester = (first, second) if broken[0] == 1 else (second, first)
        return PeerOutcome(
            False,
            f"{tester.describe()} took the lock while {holder.describe()} held it: "
            "locks on this mount do not exclude across hosts",
            "do not share a broker data directory over this mount: use NFSv4 with "
            "local_lock=none, GFS2, or OCFS2 with the userspace cluster stack",
            details,
        )
    return PeerOutcome(
        True,
        f"while {first.describe()} held the lock, {second.describe()} could not "
        "take it, and the other way round",
        details=details,
    )


def _rounds(
    session: Path, me: Instance, peer: Instance, first: bool, timeout: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Round 1: first holds, second tests; round 2 the other way round (module docstring)."""
    if first:
        one = _hold_round(session, me, peer, 1, timeout)
        two = _test_round(session, me, peer, 2, timeout)
        try:
            _wait_for(session, "released-2", timeout, peer)
        finally:
            shutil.rmtree(session, ignore_errors=True)  # the last step: nobody reads it any more
        return one, two
    one = _test_round(session, me, peer, 1, timeout)
    _wait_for(session, "released-1", timeout, peer)
    two = _hold_round(session, me, peer, 2, timeout)
    return one, two
