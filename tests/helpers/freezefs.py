"""A FUSE passthrough file system that a test can freeze, thaw and make fail with EIO.

    python -m tests.helpers.freezefs ROOT MOUNTPOINT

Mounts ROOT at MOUNTPOINT (libfuse 3 through mfusepy), says `MOUNTED`, then takes one command
per line on stdin and answers each with one line:

    freeze  -> FROZEN   every later operation blocks until thaw (a hard-mounted NFS server gone)
    thaw    -> THAWED   blocked and later operations go through again
    eio     -> EIO      every later operation fails with EIO (an NFSv4 client whose lease expired)
    ok      -> OK       operations work again
    slow MS -> SLOW     every later operation first sleeps MS milliseconds (0: no delay)
    exit    -> unmounts and exits 0 (so does the end of stdin)

Operations already blocked by `freeze` stay blocked until `thaw`. The kernel, not this file
system, handles fcntl locks (no `lock` operation is offered), so locks taken through the
mountpoint exclude each other but not locks taken on ROOT directly: a broker on ROOT can take
the lock while a frozen master still holds its own, as after an NFSv4 lease expiry.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    import mfusepy as fuse
except (ImportError, OSError) as _missing:  # OSError: mfusepy found no libfuse
    fuse = None
    _IMPORT_ERROR: str | None = str(_missing)
else:
    _IMPORT_ERROR = None

from stores.fscheck.worker import LineChild


def _interrupted() -> bool:
    """Whether the kernel asked to interrupt the request this thread is serving."""
    return bool(fuse._libfuse.fuse_interrupted())


# A frozen operation waits at most this long, so a forgotten thaw cannot hang a machine forever.
MAX_FREEZE = 600.0


class FreezableFS(fuse.Operations if fuse is not None else object):  # type: ignore[misc]
    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.running = threading.Event()
        self.running.set()
        self.failing = False
        self.delay = 0.0

    def _path(self, path: str) -> str:
        self._gate()
        return os.path.join(self.root, path.lstrip("/"))

    def _gate(self) -> None:
        if self.delay:
            time.sleep(self.delay)
        deadline = time.monotonic() + MAX_FREEZE
        while not self.running.wait(0.05) and time.monotonic() < deadline:
            # A frozen call gives way only to a process being killed (the kernel then sends an
            # interrupt), as a hard NFS mount does: the caller can die, it cannot carry on.
            if _interrupted():
                raise fuse.FuseOSError(errno.EINTR)
        if self.failing:
            raise fuse.FuseOSError(errno.EIO)

    def _call(self, function, *args):  # type: ignore[no-untyped-def]
        try:
            return function(*args)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    # -- metadata ---------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        full = self._path(path)
        st = self._call(os.fstat, fh) if fh is not None else self._call(os.lstat, full)
        keys = ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_atime_ns", "st_mtime_ns",
                "st_ctime_ns", "st_ino")
        attrs = {key: getattr(st, key) for key in keys}
        for key in ("st_atime", "st_mtime", "st_ctime"):
            attrs[key] = attrs.pop(key + "_ns")
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self._call(os.listdir, self._path(path))]

    def statfs(self, path: str) -> dict[str, int]:
        st = self._call(os.statvfs, self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
                "f_flag", "f_frsize", "f_namemax")
        return {key: getattr(st, key) for key in keys}

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self._call(os.chmod, self._path(path), mode)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._call(lambda p: os.utime(p, ns=times), self._path(path))
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self._call(os.mkdir, self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        self._call(os.rmdir, self._path(path))
        return 0

    def unlink(self, path: str) -> int:
        self._call(os.unlink, self._path(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        self._call(os.rename, self._path(old), self._path(new))
        return 0

    # -- files ------------------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        return int(self._call(os.open, self._path(path), flags & ~os.O_CREAT))

    def create(self, path: str, mode: int, fi: object = None) -> int:
        full = self._path(path)
        return int(self._call(os.open, full, os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._gate()
        return bytes(self._call(os.pread, fh, size, offset))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._gate()
        return int(self._call(os.pwrite, fh, data, offset))

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is not None:
            self._gate()
            self._call(os.ftruncate, fh, length)
        else:
            self._call(os.truncate, self._path(path), length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        # Never gated: a dying process flushes every open file after its kill has been
        # consumed, so a frozen flush could never be interrupted (its writes went through write).
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._gate()
        self._call(os.fdatasync if datasync else os.fsync, fh)
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)  # never gated: the kernel releases a dead process's files through here
        return 0


def _serve_commands(fs: FreezableFS, mountpoint: str) -> None:
    replies = {"freeze": "FROZEN", "thaw": "THAWED", "eio": "EIO", "ok": "OK"}
    for line in sys.stdin:
        command = line.strip()
        if command == "freeze":
            fs.running.clear()
        elif command == "thaw":
            fs.running.set()
        elif command in ("eio", "ok"):
            fs.failing = command == "eio"
        elif command.startswith("slow "):
            fs.delay = min(float(command[5:]) / 1000, 10.0)
            print("SLOW", flush=True)
            continue
        elif command == "exit":
            break
        elif not command:
            continue
        else:
            print(f"UNKNOWN {command[:40]}", flush=True)
            continue
        print(replies[command], flush=True)
    fs.failing = False
    fs.running.set()
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)


def main(argv: list[str]) -> int:
    root, mountpoint = (str(Path(arg).resolve()) for arg in argv[:2])
    fs = FreezableFS(root)
    threading.Thread(target=_serve_commands, args=(fs, mountpoint), daemon=True).start()
    ready = threading.Thread(target=_announce_when_mounted, args=(mountpoint,), daemon=True)
    ready.start()
    fuse.FUSE(fs, mountpoint, foreground=True, nothreads=False, allow_other=False)
    return 0


def _announce_when_mounted(mountpoint: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            print("MOUNTED", flush=True)
            return
        time.sleep(0.02)
    print("MOUNT-TIMEOUT", flush=True)


def unavailable() -> str | None:
    """Why a FUSE mount cannot be made here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if _IMPORT_ERROR is not None:
        return f"mfusepy/libfuse3 unavailable: {_IMPORT_ERROR}"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    return None


class FreezeMount(LineChild):
    """The parent side: mount ROOT at MOUNTPOINT in a child process and steer it."""

    name = "freezefs"

    def __init__(self, root: Path, mountpoint: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        package_root = Path(__file__).resolve().parents[2]
        super().__init__([sys.executable, "-m", "tests.helpers.freezefs", str(root), str(mountpoint)],
                         cwd=package_root)
        self.expect("MOUNTED", timeout=20)

    def command(self, line: str) -> None:
        reply = {"freeze": "FROZEN", "thaw": "THAWED", "eio": "EIO", "ok": "OK"}.get(line, "SLOW")
        self.send(line)
        self.expect(reply)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        super().close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
