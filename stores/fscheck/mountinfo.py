"""Which file system holds a directory, from the text of /proc/self/mountinfo (pure, no I/O).

proc(5), "/proc/pid/mountinfo": one line per mount,

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2) (3)  (4)   (5)      (6)       (7)   (8)  (9)   (10)         (11)

mount id, parent id, major:minor, root, mount point, per-mount options, optional fields ended by
"-", file system type, source, per-superblock options. Paths escape space, tab, newline and
backslash as octal (`\\040`). NFS puts its protocol options (`vers=4.2`, `hard`, `local_lock=none`)
among the superblock options. The warnings below are the ones docs/lock-protocol.md §8 and
docs/operations.md explain: they decide whether fcntl locks on this mount are cluster-wide.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

MAX_TEXT = 4 * 1024 * 1024  # bytes of mountinfo we parse; a real table is a few KiB
MAX_LINES = 20_000

ERROR, CAUTION = "error", "caution"  # error: locks cannot protect a shared store; caution: check it

_OCTAL = re.compile(r"\\([0-7]{3})")
_LOCAL = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs"}
_UNTESTED = (
    "cifs",
    "smb3",
    "smbfs",
    "fuse",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "beegfs",
    "overlay",
    "vboxsf",
)


@dataclass(frozen=True)
class MountWarning:
    severity: str  # ERROR or CAUTION
    text: str


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str
    mount_options: tuple[str, ...]
    super_options: dict[str, str]  # flag options map to ""
    warnings: tuple[MountWarning, ...] = field(default=())

    @property
    def nfs_version(self) -> str | None:
        """ "3", "4", "4.1", ... for an NFS mount, else None."""
        if self.fs_type == "nfs4":
            return self.super_options.get("vers", "4")
        if self.fs_type == "nfs":
            return self.super_options.get("vers") or self.super_options.get("nfsvers") or "3"
        return None

    @property
    def local(self) -> bool:
        return self.fs_type in _LOCAL

    def describe(self) -> str:
        text = f"{self.fs_type} ({self.source} on {self.mount_point})"
        if self.nfs_version is not None:
            text = f"NFS version {self.nfs_version} ({self.source} on {self.mount_point})"
        return text


def _unescape(text: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def _options(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key:
            found[key] = value
    return found


def parse_line(line: str) -> Mount | None:
    """One mountinfo line; None for a line that does not have the documented shape."""
    fields = line.split(" ")
    try:
        dash = fields.index("-", 6)
    except ValueError:
        return None
    if dash + 3 > len(fields) or len(fields[4]) == 0:
        return None
    fs_type, source = fields[dash + 1], _unescape(fields[dash + 2])
    supers = _options(fields[dash + 3]) if dash + 3 < len(fields) else {}
    mount = Mount(_unescape(fields[4]), fs_type, source, tuple(fields[5].split(",")), supers)
    return replace(mount, warnings=tuple(warnings_for(mount)))


def parse(text: str) -> list[Mount]:
    """Every well-formed line, in order (later lines are mounted over earlier ones)."""
    lines = text[:MAX_TEXT].splitlines()[:MAX_LINES]
    return [m for m in (parse_line(line) for line in lines) if m is not None]


def _within(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(text: str, path: str) -> Mount | None:
    """The mount that holds `path` (absolute, symlinks resolved): the longest mount point that
    contains it, the last one listed when several are stacked on the same point."""
    best: Mount | None = None
    for mount in parse(text):
        if _within(path, mount.mount_point):
            if best is None or len(mount.mount_point) >= len(best.mount_point):
                best = mount
    return best


def read_mount(path: str, mountinfo: str = "/proc/self/mountinfo") -> Mount | None:
    """The mount holding `path` on this host; None where there is no mountinfo (not Linux)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            text = f.read(MAX_TEXT)
    except OSError:
        return None
    return mount_of(text, os.path.realpath(path))


def warnings_for(mount: Mount) -> list[MountWarning]:
    """What this mount means for a lock shared by brokers (docs/operations.md)."""
    if mount.nfs_version is not None:
        return _nfs_warnings(mount)
    opts, kind = mount.super_options, mount.fs_type
    if kind == "ocfs2":
        return [
            MountWarning(
                CAUTION,
                "OCFS2: fcntl locks are cluster-wide only with the userspace "
                "cluster stack (pacemaker/corosync); with the classic o2cb stack they "
                "are node-local. Check the cluster stack",
            )
        ]
    if kind == "gfs2" and "localflocks" in opts:
        return [MountWarning(ERROR, "GFS2 mounted with localflocks: locks are node-local, useless for HA")]
    if kind.startswith(_UNTESTED):
        return [
            MountWarning(
                CAUTION,
                f"{kind}: untested with BatonMQ; do not rely on its locks for HA "
                "without running this check on two hosts (--peer)",
            )
        ]
    return []


def _nfs_warnings(mount: Mount) -> list[MountWarning]:
    opts, version = mount.super_options, mount.nfs_version or ""
    found = []
    if version.split(".")[0] in ("2", "3"):
        found.append(
            MountWarning(
                ERROR,
                f"NFS version {version}: locks go through NLM without leases "
                "and are not released when a client host crashes; NFSv3 is "
                "unsupported, mount with vers=4.1 or 4.2",
            )
        )
    local_lock = opts.get("local_lock", "none")
    if local_lock in ("posix", "all") or "nolock" in opts:
        found.append(
            MountWarning(
                ERROR,
                f"NFS local_lock={local_lock}: fcntl locks are node-local, useless "
                "for HA; mount with local_lock=none",
            )
        )
    elif local_lock != "none":
        found.append(
            MountWarning(
                CAUTION,
                f"NFS local_lock={local_lock}: flock locks are node-local "
                "(BatonMQ uses fcntl locks, which are not); prefer "
                "local_lock=none",
            )
        )
    if "soft" in opts or "softerr" in opts:
        found.append(
            MountWarning(
                CAUTION, "NFS soft mount: writes may fail or be lost after a timeout; mount with hard"
            )
        )
    return found
