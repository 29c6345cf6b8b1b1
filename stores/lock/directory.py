"""The shared-directory lock: one fcntl write lock on `<data dir>/lock`, held on one descriptor.

Design §2 and docs/lock-protocol.md. POSIX record locks (fcntl), not flock: fcntl locks are the
ones NFSv4, GFS2 and OCFS2 make cluster-wide. We use open-file-description (OFD) locks: they
belong to the descriptor, exclude other descriptors of the same process, and are not dropped
when some unrelated descriptor of the file is closed. Classic process-owned locks are the
fallback where OFD locks are unavailable; then this module never opens the lock file a second
time while this process holds it (closing *any* descriptor would drop a classic lock).

The lock file's content is the holder's identity (JSON), written through the held descriptor.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import threading
import time
from pathlib import Path

from stores.lock.identity import MAX_IDENTITY, Holder, LockLost, LockUnanswered

LOCK_NAME = "lock"

_BUSY = (errno.EAGAIN, errno.EACCES)
_RECHECK = 0.5  # a long wait_acquire re-tries the path this often, in case the file was replaced
_POLL = 0.05  # classic locks have no separate waiter descriptor: poll instead

_ofd_supported = hasattr(fcntl, "F_OFD_SETLK")
# Classic locks held by this process, by (st_dev, st_ino) -> descriptor; guarded by _classic_mutex.
_classic_held: dict[tuple[int, int], int] = {}
_classic_mutex = threading.Lock()


# A path that is gone (ENOENT), or a handle the NFS server no longer knows (ESTALE: the file was
# removed or replaced there), is an answer about ownership; any other error is no answer.
_GONE = (errno.ENOENT, errno.ESTALE)


def stat_lock_path(path: Path | str, what: str = "lock file") -> os.stat_result:
    """stat(path): LockLost if the file is gone, LockUnanswered if the file system failed."""
    try:
        return os.stat(path)
    except OSError as exc:
        if exc.errno in _GONE:
            raise LockLost(f"{what} {path} was deleted") from None
        raise LockUnanswered(f"cannot stat {what} {path}: {exc}") from exc


class _Flock(ctypes.Structure):
    # struct flock (fcntl(2)); ctypes gives the platform's alignment and trailing padding.
    _fields_ = [
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),  # must be 0 for OFD locks
    ]


def _ofd(fd: int, command: int, lock_type: int) -> None:
    # l_start = l_len = 0: the whole file, however long the identity grows.
    fcntl.fcntl(fd, command, bytes(_Flock(lock_type, os.SEEK_SET, 0, 0, 0)))


def _unlock_close(fd: int, ofd: bool) -> None:
    try:
        if ofd:
            _ofd(fd, fcntl.F_OFD_SETLK, fcntl.F_UNLCK)
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError:
        pass  # closing below drops the lock anyway
    os.close(fd)


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


class DirectoryLock:
    """The exclusive lock on `<data_dir>/lock`. Thread-safe; one instance per broker term.

    `ofd=None` picks OFD locks when the platform has them; `ofd=False` forces classic locks
    (tests of the fallback).
    """

    def __init__(self, data_dir: Path, *, ofd: bool | None = None) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._ofd = _ofd_supported if ofd is None else (ofd and _ofd_supported)
        self._cond = threading.Condition(threading.Lock())
        self._fd = -1
        self._identity: tuple[int, int] | None = None
        self._published: Holder | None = None
        # The single persistent waiter thread (OFD only), see wait_acquire.
        self._waiter: threading.Thread | None = None
        self._waiter_wanted = False  # False: whatever the waiter obtains, it hands straight back
        self._waiter_fd = -1  # a lock the waiter obtained, not yet picked up
        self._waiter_failed = False
        self._generation = 0  # bumped by release(): in-flight wait_acquire calls give up

    @property
    def held(self) -> bool:
        return self._fd >= 0

    @property
    def fileno(self) -> int:
        """The held descriptor, or -1."""
        return self._fd

    @property
    def identity(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the locked file, for cheap 'same file at the path?' checks."""
        return self._identity

    @property
    def mode(self) -> str:
        return "ofd" if self._ofd else "classic"

    def try_acquire(self) -> bool:
        """Take the lock without blocking; creates the directory and the lock file if needed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._cond:
            if self._fd >= 0:
                return True
            # A file deleted or replaced between our open() and our lock is retried, a few times.
            for _ in range(3):
                outcome = self._attempt() if self._ofd else self._attempt_classic()
                if outcome is not None:
                    return outcome
            return False

    def _attempt(self) -> bool | None:
        global _ofd_supported
        fd = _open_lock_file(self.path)
        try:
            _ofd(fd, fcntl.F_OFD_SETLK, fcntl.F_WRLCK)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                return False
            if exc.errno != errno.EINVAL:
                raise
            # Kernel without OFD locks (< 3.15). Nothing classic can be held by this process yet:
            # the first attempt of any lock in auto mode takes this branch.
            _ofd_supported = self._ofd = False
            return self._attempt_classic()
        return True if self._adopt(fd) else None

    def _attempt_classic(self) -> bool | None:
        with _classic_mutex:
            try:
                if _file_id(os.stat(self.path)) in _classic_held:
                    # Held by this process: classic locks would not exclude us, and opening the
                    # file again and closing it would drop that lock.
                    return False
            except FileNotFoundError:
                pass
            fd = _open_lock_file(self.path)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in _BUSY:
                    return False
                raise
            return True if self._adopt(fd) else None

    def _adopt(self, fd: int) -> bool:
        """Keep `fd` if it locks the file now at the path; called with the condition held."""
        try:
            same = _file_id(os.stat(self.path)) == _file_id(os.fstat(fd))
        except FileNotFoundError:
            same = False
        if not same:
            # We locked a file that was deleted or replaced after we opened it: worthless.
            _unlock_close(fd, self._ofd)
            return False
        self._fd = fd
        self._identity = _file_id(os.fstat(fd))
        self._published = None
        self._waiter_wanted = False  # a still-blocked waiter must give back whatever it gets
        if not self._ofd:
            _classic_held[self._identity] = fd  # caller holds _classic_mutex
        return True

    def wait_acquire(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for the lock; callable from any thread.

        OFD mode: one persistent daemon thread per DirectoryLock blocks in F_OFD_SETLKW on its own
        descriptor, so a release (or the death of the holder) wakes us at once. If this call times
        out, the thread keeps waiting; a lock it obtains later is picked up by the next call, and
        handed straight back if release() was called meanwhile, so nothing is ever held unknown.
        release() also makes an in-flight wait_acquire return False promptly.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            generation = self._generation
        while True:
            if self.try_acquire():
                return self._keep_unless_released(generation)
            remaining = deadline - time.monotonic()
            if self._ofd and not self._waiter_failed:
                if self._collect(max(0.0, min(remaining, _RECHECK)), generation):
                    return self._keep_unless_released(generation)
            elif remaining > 0:
                time.sleep(min(_POLL, remaining))
            with self._cond:
                if self._generation != generation:
                    return False
            if deadline - time.monotonic() <= 0:
                return False

    def _keep_unless_released(self, generation: int) -> bool:
        with self._cond:
            cancelled = self._generation != generation
        if cancelled:
            self.release()  # release() ran while we were acquiring: honour it
            return False
        return True

    def _collect(self, wait: float, generation: int) -> bool:
        """Start or re-arm the waiter thread, wait up to `wait` for it, and adopt what it got."""
        with self._cond:
            if self._fd >= 0:
                return True
            self._waiter_wanted = True
            if self._waiter is None and self._waiter_fd < 0:
                self._waiter = threading.Thread(
                    target=self._wait_in_thread, name=f"lock-waiter {self.path}", daemon=True
                )
                self._waiter.start()
            if self._waiter_fd < 0 and wait > 0:
                self._cond.wait_for(
                    lambda: self._waiter_fd >= 0 or self._generation != generation or self._waiter_failed,
                    timeout=wait,
                )
            fd, self._waiter_fd = self._waiter_fd, -1
            return fd >= 0 and self._adopt(fd)

    def _wait_in_thread(self) -> None:
        fd = -1
        try:
            fd = _open_lock_file(self.path)
            _ofd(fd, fcntl.F_OFD_SETLKW, fcntl.F_WRLCK)  # EINTR is retried by Python (PEP 475)
        except OSError:
            if fd >= 0:
                os.close(fd)
            with self._cond:
                self._waiter = None
                self._waiter_failed = True  # wait_acquire falls back to polling
                self._cond.notify_all()
            return
        with self._cond:
            self._waiter = None
            if self._waiter_wanted and self._fd < 0:
                self._waiter_fd = fd
                self._cond.notify_all()
                return
        _unlock_close(fd, ofd=True)  # nobody wants it (released, or we hold it another way)

    def publish(self, holder: Holder) -> None:
        """Write `holder` as the lock file's content through the held descriptor, durably."""
        data = holder.to_json().encode() + b"\n"
        if len(data) > MAX_IDENTITY:
            raise ValueError(f"identity is {len(data)} bytes, more than {MAX_IDENTITY}")
        with self._cond:
            fd = self._fd
            if fd < 0:
                raise LockLost("cannot publish our identity: the lock is not held")
            try:
                view, done = memoryview(data), 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], done)
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            except OSError as exc:
                raise LockLost(f"writing our identity into {self.path} failed: {exc}") from exc
            self._published = holder

    def verify(self) -> None:
        """The keep-alive check of design §2.

        LockLost(reason) when the answer is "not ours" (released, deleted, replaced, someone
        else's identity); LockUnanswered when the file system gave no answer (an I/O error).
        """
        with self._cond:
            fd = self._fd
            if fd < 0:
                raise LockLost("the lock is not held")
            if _file_id(stat_lock_path(self.path)) != self._identity:
                raise LockLost(f"lock file {self.path} was replaced by another file")
            try:
                # An NFSv4 client whose lease expired gets EIO here; the lock_timeout decides.
                content = os.pread(fd, MAX_IDENTITY + 1, 0)
            except OSError as exc:
                if exc.errno == errno.ESTALE:
                    raise LockLost(f"lock file {self.path} is stale on the server: {exc}") from exc
                raise LockUnanswered(f"reading {self.path} through our descriptor failed: {exc}") from exc
            if self._published is not None:
                found = Holder.from_json(content)
                if found != self._published:
                    who = found.describe() if found is not None else "unreadable content"
                    raise LockLost(f"lock file {self.path} now names {who}, not us")

    def current_holder(self) -> Holder | None:
        """The identity in the lock file, read through our descriptor when we hold the lock."""
        with self._cond:
            if self._fd >= 0:
                try:
                    return Holder.from_json(os.pread(self._fd, MAX_IDENTITY + 1, 0))
                except OSError:
                    return None
        return read_holder(self.path.parent)

    def release(self) -> None:
        """Unlock and close; idempotent. A pending waiter hands back whatever it obtains."""
        with self._cond:
            self._generation += 1
            self._waiter_wanted = False
            pending, self._waiter_fd = self._waiter_fd, -1
            fd, self._fd = self._fd, -1
            identity, self._identity = self._identity, None
            self._published = None
            self._cond.notify_all()
        if pending >= 0:
            _unlock_close(pending, ofd=True)
        if fd < 0:
            return
        if self._ofd:
            _unlock_close(fd, ofd=True)
            return
        with _classic_mutex:
            if identity is not None:
                _classic_held.pop(identity, None)
            _unlock_close(fd, ofd=False)


def lock_held(data_dir: Path) -> bool | None:
    """Whether some descriptor holds the lock, asked without taking it; None if there is no lock file.

    F_OFD_GETLK on a read-only descriptor that is never locked. Opening and closing it cannot drop
    anyone's lock: OFD locks belong to their own descriptor, and a classic lock only to its own
    process — so, like read_holder, not for a process that holds the lock with classic locks.
    """
    try:
        fd = os.open(Path(data_dir) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    try:
        probe = bytes(_Flock(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        try:
            answer = fcntl.fcntl(fd, getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK), probe)
        except OSError:
            answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)  # kernels without OFD locks
        return int(_Flock.from_buffer_copy(answer).l_type) != fcntl.F_UNLCK
    finally:
        os.close(fd)


def read_holder(data_dir: Path) -> Holder | None:
    """The identity in `<data_dir>/lock`, without taking or disturbing any lock.

    A classic lock held by this process is read through its own descriptor: opening and closing
    a fresh one would drop it. OFD locks are not affected by other descriptors.
    """
    path = Path(data_dir) / LOCK_NAME
    try:
        file_id = _file_id(os.stat(path))
    except OSError:
        return None
    with _classic_mutex:
        held_fd = _classic_held.get(file_id)
        if held_fd is not None:
            try:
                return Holder.from_json(os.pread(held_fd, MAX_IDENTITY + 1, 0))
            except OSError:
                return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return Holder.from_json(os.pread(fd, MAX_IDENTITY + 1, 0))
    except OSError:
        return None
    finally:
        os.close(fd)
