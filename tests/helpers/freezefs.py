"""A FUSE passthrough file system that a test can freeze, thaw and make fail with EIO.

    python -m tests.helpers.freezefs ROOT MOUNTPOINT

Mounts ROOT at MOUNTPOINT (libfuse 3 through mfusepy), says `MOUNTED`, then takes one command
per line on stdin and answers each with one line:

    freeze  -> FROZEN   every later operation blocks until thaw (a hard-mounted NFS server gone)
    thaw    -> THAWED   blocked and later operations go through again
    eio     -> EIO      every later operation fails with EIO (an NFSv4 client whose lease expired)
    ok      -> OK       operations work again
    exit    -> unmounts and exits 0 (so does the end of stdin)

Operations already blocked by `freeze` stay blocked until `thaw`. The kernel, not this file
system, handles fcntl locks (no `lock` operation is offered), so locks taken through the
mountpoint exclude each other but not locks taken on ROOT directly: a broker on ROOT can take
the lock while a frozen master still holds its own, as after an NFSv4 lease expiry.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mfusepy as fuse

# A frozen operation waits at most this long, so a forgotten thaw cannot hang a machine forever.
MAX_FREEZE = 600.0


class FreezableFS(fuse.Operations):
    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.running = threading.Event()
        self.running.set()
        self.failing = False

    def _path(self, path: str) -> str:
        self._gate()
        return os.path.join(self.root, path.lstrip("/"))

    def _gate(self) -> None:
        self.running.wait(MAX_FREEZE)
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
        self._gate()
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
        elif command == "exit":
            break
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
