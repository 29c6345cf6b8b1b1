"""The checks of `batonmq fscheck`: each a small function that returns a CheckResult.

Every check works in its own subdirectory of a private scratch directory
(`DIR/.batonmq-fscheck/<host>-<pid>-<random>/`), never on a broker's `lock` file, and uses the
broker's own lock code (stores.lock.DirectoryLock) so it tests exactly what the broker relies on
(docs/lock-protocol.md). Holders that must die are separate processes (stores.fscheck.worker).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores.fscheck import records
from stores.fscheck.mountinfo import ERROR, Mount, read_mount
from stores.fscheck.peer import run_peer
from stores.fscheck.worker import Worker, WorkerError
from stores.fsio import sync_directory
from stores.lock.directory import DirectoryLock, read_holder
from stores.lock.identity import Holder, LockLost

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
SCRATCH = ".batonmq-fscheck"
NFS_LEASE = 90.0  # Linux nfsd's default lease, /proc/fs/nfsd/nfsv4leasetime
MAX_RECORDS_READ = 256 * 1024 * 1024  # bytes of the handover file we read back
ORDER = ("basic", "exclusive", "exclusive-peer", "release-on-death", "handover", "keep-alive")
_NOT_HA = (
    "do not run BatonMQ master/slave on this file system: use NFSv4 (local_lock=none), GFS2, "
    "or OCFS2 with the userspace cluster stack (docs/operations.md)"
)


@dataclass
class CheckResult:
    name: str
    status: str  # PASS, FAIL or SKIP
    explanation: str
    advice: str = ""  # what to do about a failure
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    peer: bool = False
    wait_for_peer: float = 120.0
    release_bound: float = 10.0
    linger: float = 0.0  # tests only: the release-on-death holder's lock outlives it (worker --linger)


def _lock_kind(lock: DirectoryLock) -> str:
    return "OFD" if lock.mode == "ofd" else "classic POSIX"


def _holder(name: str) -> Holder:
    return Holder(name, socket.gethostname() or "localhost", os.getpid(), time.time(), 0)


def check_basic(work: Path, mount: Mount | None) -> CheckResult:
    """Create, lock, write, fsync, read back, unlock; and what the file system means for locks."""
    work.mkdir()
    lock = DirectoryLock(work)
    if not lock.try_acquire():
        return CheckResult("basic", FAIL, f"could not lock a new file in {work}", _NOT_HA)
    try:
        kind = _lock_kind(lock)
        lock.publish(_holder("fscheck-basic"))
        written = secrets.token_bytes(64 * 1024)
        probe = work / "probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, written)
            os.fsync(fd)
        finally:
            os.close(fd)
        sync_directory(work)
        if probe.read_bytes() != written:
            return CheckResult(
                "basic", FAIL, "a file read back differs from what was written and fsynced", _NOT_HA
            )
        if read_holder(work) is None:
            return CheckResult(
                "basic", FAIL, "the identity written into the lock file does not read back", _NOT_HA
            )
    finally:
        lock.release()
    again = DirectoryLock(work)
    if not again.try_acquire():
        return CheckResult("basic", FAIL, "the lock could not be taken again after it was released", _NOT_HA)
    again.release()
    return _with_mount(
        CheckResult(
            "basic",
            PASS,
            f"create, lock ({kind} lock), write, fsync, read back and unlock work",
            details={"lock_kind": kind},
        ),
        mount,
    )


def _with_mount(result: CheckResult, mount: Mount | None) -> CheckResult:
    if mount is None:
        result.explanation += "; file system type unknown (no /proc/self/mountinfo)"
        return result
    result.details.update(
        fs_type=mount.fs_type,
        source=mount.source,
        mount_point=mount.mount_point,
        nfs_version=mount.nfs_version,
        options=dict(mount.super_options),
        warnings=[f"{w.severity}: {w.text}" for w in mount.warnings],
    )
    result.explanation += f"; file system {mount.describe()}"
    if mount.local:
        result.explanation += ", local: brokers on this host only"
    errors = [w.text for w in mount.warnings if w.severity == ERROR]
    if errors:
        result.status = FAIL
        result.explanation += "; " + "; ".join(errors)
        result.advice = "remount as docs/operations.md describes, then run this check again"
    return result


def check_exclusive(work: Path) -> CheckResult:
    """While another process holds the lock, this one cannot take it; after release it can."""
    work.mkdir()
    lock = DirectoryLock(work)
    with Worker("hold", str(work)) as worker:
        identity = Holder.from_json(worker.expect("HOLDING"))
        try:
            if lock.try_acquire() or lock.wait_acquire(0.3):
                return CheckResult(
                    "exclusive",
                    FAIL,
                    f"this process took the lock while pid {worker.pid} "
                    "held it: locks do not exclude on this file system",
                    _NOT_HA,
                )
            seen = read_holder(work)
            worker.send("release")
            worker.expect("RELEASED")
            started = time.monotonic()
            if not lock.wait_acquire(5.0):
                return CheckResult(
                    "exclusive",
                    FAIL,
                    f"the lock was still busy 5 s after pid {worker.pid} released it",
                    _NOT_HA,
                )
            after = time.monotonic() - started
        finally:
            lock.release()
    details = {
        "holder_pid": worker.pid,
        "identity_seen": seen == identity,
        "free_after_release_s": round(after, 6),
    }
    return CheckResult(
        "exclusive",
        PASS,
        f"another process (pid {worker.pid}) held the lock and this one "
        f"could not take it; free {_ms(after)} after release",
        details=details,
    )


def check_release_on_death(work: Path, bound: float, linger: float = 0.0) -> CheckResult:
    """A holder killed with SIGKILL: its lock must become free within `bound` seconds."""
    work.mkdir()
    lock = DirectoryLock(work)
    lingerer = 0
    extra = ["--linger", str(linger)] if linger > 0 else []
    try:
        with Worker("hold", str(work), *extra) as worker:
            worker.expect("HOLDING")
            if linger > 0:
                lingerer = int(worker.expect("LINGER"))
            if lock.try_acquire():
                return CheckResult(
                    "release-on-death", FAIL, "the lock was free while the holder lived", _NOT_HA
                )
            started = time.monotonic()  # from the SIGKILL: the reap is part of the dying
            worker.kill()
            freed = lock.wait_acquire(bound)
            took = time.monotonic() - started
    finally:
        lock.release()
        if lingerer:
            _kill_quietly(lingerer)
    details = {"holder_pid": worker.pid, "bound_s": bound, "seconds": round(took, 3)}
    if not freed:
        return CheckResult(
            "release-on-death",
            FAIL,
            f"the lock was still held {bound:g} s after its holder "
            f"(pid {worker.pid}) was killed with SIGKILL: a slave would not take over",
            "this file system does not release a dead process's lock (NFSv3 with NLM "
            "can behave so); use NFSv4, or if the server is merely slow, retry with a "
            "larger --release-bound",
            details,
        )
    return CheckResult(
        "release-on-death",
        PASS,
        f"the lock was free {_ms(took)} after its holder "
        f"was killed with SIGKILL (bound {bound:g} s); a dead HOST's lock is freed only when "
        f"the NFSv4 lease expires, up to {NFS_LEASE:.0f} s by default",
        details=details,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        pass  # already gone


def check_handover(work: Path, bound: float, rng: random.Random) -> CheckResult:
    """A holder fsyncs numbered records and dies; the next holder must read every fsynced one intact."""
    work.mkdir()
    path = work / "records"
    target = rng.randint(5, 60)
    synced = 0
    with Worker("records", str(work), str(path), "--max", "1000") as worker:
        worker.expect("HOLDING")
        while synced < target:
            synced = int(worker.expect("SYNCED"))
        worker.kill()  # somewhere in the middle of the next record, or just after its fsync
        synced = max([synced, *worker.remaining("SYNCED")])
    lock = DirectoryLock(work)
    try:
        if not lock.wait_acquire(bound):
            return CheckResult(
                "handover",
                FAIL,
                f"the next holder could not take the lock within {bound:g} s",
                "see release-on-death",
                {"synced": synced},
            )
        with open(path, "rb") as f:
            scan = records.scan(f.read(MAX_RECORDS_READ))
    finally:
        lock.release()
    found = len(scan.good)
    details = {"synced": synced, "intact": found, "tail": scan.end}
    if found < synced:
        return CheckResult(
            "handover",
            FAIL,
            f"the holder reported {synced} records fsynced, but the next "
            f"holder read only {found} intact: at record {found + 1}, {scan.end}",
            "fsync is not durable or not visible to the next lock holder here: " + _NOT_HA,
            details,
        )
    tail = f"; {found - synced} more written but not yet reported" if found > synced else ""
    tail += "" if scan.end == "clean end" else f"; after them {scan.end}, never reported fsynced"
    return CheckResult(
        "handover",
        PASS,
        f"the holder fsynced {synced} records and was killed with SIGKILL; "
        f"the next holder read all of them intact (checksummed){tail}",
        details=details,
    )


def check_keepalive(work: Path) -> CheckResult:
    """Replacing, deleting or overwriting the lock file is caught by DirectoryLock.verify()."""
    work.mkdir()
    path = work / "lock"
    cases: list[tuple[str, Callable[[], None]]] = [
        ("replaced", lambda: _replace(path)),
        ("deleted", lambda: path.unlink()),
    ]
    if DirectoryLock(work).mode == "ofd":  # with classic locks, our own extra descriptor would drop it
        cases.append(("overwritten", lambda: _overwrite(path)))
    seen: dict[str, str] = {}
    for case, damage in cases:
        lock = DirectoryLock(work)
        try:
            if not lock.try_acquire():
                return CheckResult(
                    "keep-alive", FAIL, f"could not take the lock for the '{case}' case", _NOT_HA
                )
            lock.publish(_holder("fscheck-keepalive"))
            lock.verify()  # an untouched lock must verify, or the broker would stop for nothing
            damage()
            try:
                lock.verify()
            except LockLost as exc:
                seen[case] = exc.reason
                continue
            return CheckResult(
                "keep-alive",
                FAIL,
                f"verify() did not notice the lock file being {case}",
                "a master here would not notice a replaced lock file and two masters could "
                "serve at once: " + _NOT_HA,
                {"detected": seen},
            )
        except LockLost as exc:
            return CheckResult(
                "keep-alive",
                FAIL,
                f"verify() failed on an untouched lock: {exc.reason}",
                "a master would stop at once after taking the lock: " + _NOT_HA,
            )
        finally:
            lock.release()
    return CheckResult(
        "keep-alive",
        PASS,
        f"DirectoryLock.verify() detected the lock file {', '.join(seen)}",
        details={"detected": seen},
    )


def _replace(path: Path) -> None:
    new = path.with_name("lock.new")
    new.write_bytes(b"")
    os.replace(new, path)


def _overwrite(path: Path) -> None:
    other = Holder("another-broker", "elsewhere", 1, time.time(), 99)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, other.to_json().encode() + b"\n", 0)
    finally:
        os.close(fd)


def check_exclusive_peer(root: Path, options: Options) -> CheckResult:
    if not options.peer:
        return CheckResult(
            "exclusive-peer",
            SKIP,
            "not asked: run `batonmq fscheck DIR --peer` on two hosts "
            "at the same time to test locking across hosts",
        )
    outcome = run_peer(root, options.wait_for_peer, step_timeout=max(30.0, options.release_bound))
    status = PASS if outcome.ok else FAIL
    rounds = [outcome.details.get(f"round_{n}", {}) for n in (1, 2)]
    if any(r.get("identity_seen") is False for r in rounds):
        # Locking worked, but a waiting slave here could not name the master in its logs.
        outcome.details["warnings"] = [
            "the waiting instance did not read the holder's identity from the "
            "lock file: file contents may be cached stale on this mount"
        ]
    return CheckResult("exclusive-peer", status, outcome.explanation, outcome.advice, outcome.details)


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """A check that could not run to its end is a failure, with the reason it stopped."""
    try:
        return check()
    except (OSError, WorkerError, LockLost, ValueError) as exc:
        return CheckResult(
            name,
            FAIL,
            f"the check itself failed: {exc}",
            "make sure DIR is writable and not full, then run again",
        )


def scratch_root(directory: Path) -> Path:
    return directory / SCRATCH


def run_all(
    directory: Path, options: Options, mount: Mount | None = None, rng: random.Random | None = None
) -> list[CheckResult]:
    """Every check, in a private scratch directory that is removed afterwards."""
    root = scratch_root(directory)
    work = root / f"{socket.gethostname() or 'localhost'}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    mount = mount if mount is not None else read_mount(str(directory))
    rng = rng or random.Random()
    try:
        results = [
            _guarded("basic", lambda: check_basic(work / "basic", mount)),
            _guarded("exclusive-peer", lambda: check_exclusive_peer(root, options)),
            _guarded("exclusive", lambda: check_exclusive(work / "exclusive")),
            _guarded(
                "release-on-death",
                lambda: check_release_on_death(work / "death", options.release_bound, options.linger),
            ),
            _guarded("handover", lambda: check_handover(work / "handover", options.release_bound, rng)),
            _guarded("keep-alive", lambda: check_keepalive(work / "keepalive")),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for empty in (root / "peer", root):
            try:
                os.rmdir(empty)  # only when no other instance is still using it
            except OSError:
                pass
    return sorted(results, key=lambda r: ORDER.index(r.name))
