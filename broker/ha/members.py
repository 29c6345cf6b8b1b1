"""The group view: every broker of a shared directory, its role, and how far behind each slave is.

The lock says who the master is and the heartbeat its epoch, but slaves leave no trace there. So
each broker that serves the admin API also keeps a small record of its own in
`<data_dir>/members/`, rewritten every `admin.member_interval` seconds (write to a temporary
name, then rename: a reader sees the old record or the new one): its name, host, pid, role,
epoch, where its admin API listens, and, for a slave, its hot standby's state and lag. Any
broker's admin API reads them all back with the heartbeat, so the master's console shows each
slave, and a slave's shows the master.

A record is `fresh` while its wall time is within three intervals (plus a few seconds for clock
differences between hosts) of the reader's clock; an old one stays listed, not fresh, as
"last seen", so a broker that died is visible as gone rather than silently absent. Records are
small JSON objects; a reader takes at most MAX_MEMBERS files of at most MAX_RECORD bytes and
skips anything that does not parse as one. Writing is best effort: a failed write is logged once
and retried at the next interval; it never affects the broker's role.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.ha.roles import Role
from stores.lock.heartbeat import read_heartbeat

if TYPE_CHECKING:
    from broker.ha.lifecycle import Lifecycle

log = logging.getLogger("batonmq.members")

MEMBERS_DIR = "members"
MAX_MEMBERS = 64
MAX_RECORD = 4096
CLOCK_SLACK = 5.0
ROLE_POLL = 0.1  # seconds between looks at the role (in memory): a new role is written at once


@dataclass(slots=True)
class Member:
    name: str
    host: str
    pid: int
    started: float
    role: str
    epoch: int  # the term's epoch while master; 0 otherwise
    admin_url: str | None
    standby: dict[str, Any] | None  # {"ready", "lag_seconds", "messages", "position"}; None: no follower
    time: float  # wall time of this record
    interval: float

    def fresh(self, now: float) -> bool:
        return now - self.time <= 3 * self.interval + CLOCK_SLACK


def members_dir(data_dir: Path) -> Path:
    return Path(data_dir) / MEMBERS_DIR


def record_path(data_dir: Path, name: str, host: str) -> Path:
    # One file per broker name on one host: a restarted broker rewrites its own record.
    digest = hashlib.sha256(f"{name}@{host}".encode()).hexdigest()[:16]
    return members_dir(data_dir) / f"{digest}.json"


def write_member(data_dir: Path, member: Member) -> None:
    """Replace this broker's record (blocking: run it in a thread)."""
    path = record_path(data_dir, member.name, member.host)
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(member)))
    os.replace(temporary, path)


def read_members(data_dir: Path) -> list[Member]:
    """Every record that parses, newest first (blocking: run it in a thread)."""
    directory = members_dir(data_dir)
    try:
        names = sorted(p for p in os.listdir(directory) if p.endswith(".json"))[:MAX_MEMBERS]
    except OSError:
        return []
    members = []
    for name in names:
        member = _parse(directory / name)
        if member is not None:
            members.append(member)
    return sorted(members, key=lambda m: -m.time)


def _parse(path: Path) -> Member | None:
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read(MAX_RECORD + 1)[:MAX_RECORD])
        member = Member(**data)
    except (OSError, ValueError, TypeError):
        return None
    texts = (member.name, member.host, member.role)
    numbers = (member.started, member.time, member.interval)
    if not all(isinstance(t, str) for t in texts) or not all(isinstance(n, int | float) for n in numbers):
        return None
    if not isinstance(member.pid, int) or not isinstance(member.epoch, int):
        return None
    if member.admin_url is not None and not isinstance(member.admin_url, str):
        return None
    if member.standby is not None and not isinstance(member.standby, dict):
        return None
    return member


def group_view(data_dir: Path) -> dict[str, Any]:
    """What the admin API's /api/brokers answers: the heartbeat's master and epoch, and the members."""
    now = time.time()
    beat = read_heartbeat(Path(data_dir))
    master = None
    if beat is not None:
        master = {"name": beat.name, "host": beat.host, "pid": beat.pid, "epoch": beat.epoch,
                  "released": beat.released, "beat_time": beat.time, "started": beat.started}
    members = []
    for member in read_members(data_dir):
        row = asdict(member)
        row["fresh"] = member.fresh(now)
        row["age_seconds"] = round(max(0.0, now - member.time), 3)
        members.append(row)
    members.sort(key=lambda row: (not row["fresh"], row["role"] != Role.MASTER.value, row["name"]))
    return {"data_dir": str(data_dir), "master": master, "epoch": beat.epoch if beat else 0,
            "members": members}


def describe_self(lifecycle: Lifecycle, admin_url: str | None, started: float) -> Member:
    config = lifecycle.config
    term = lifecycle.term
    role = lifecycle.role
    epoch = term.epoch if term is not None and role is Role.MASTER else 0
    standby = None
    if lifecycle.standby is not None and role is Role.SLAVE:
        follower = lifecycle.standby
        lag = follower.lag()
        replay = follower.replay
        # The follower's thread adds queues meanwhile: list() copies the values in one step (no
        # "changed size during iteration"), and each len() is atomic.
        queues = list(replay.messages.values()) if replay is not None else []
        standby = {"ready": follower.ready(), "lag_seconds": None if lag is None else round(lag, 3),
                   "messages": sum(len(entries) for entries in queues),
                   "position": follower.follower.position() if follower.follower is not None else None}
    return Member(config.name, socket.gethostname(), os.getpid(), started, role.value, epoch, admin_url,
                  standby, time.time(), config.admin.member_interval)


async def keep_member_record(lifecycle: Lifecycle, admin_url: str | None) -> None:
    """Rewrite this broker's record every interval, and at once when its role changes, until cancelled."""
    started = time.time()
    failing = False
    data_dir = lifecycle.config.data_dir
    loop = asyncio.get_running_loop()
    while True:
        member = describe_self(lifecycle, admin_url, started)
        try:
            await asyncio.to_thread(write_member, data_dir, member)
            failing = False
        except OSError as exc:
            if not failing:
                log.warning("broker %s: cannot write its member record in %s: %s", member.name,
                            members_dir(data_dir), exc)
            failing = True
        due = loop.time() + lifecycle.config.admin.member_interval
        while loop.time() < due and lifecycle.role.value == member.role:
            await asyncio.sleep(ROLE_POLL)
