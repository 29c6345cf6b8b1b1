"""What `batonmq start` checks before it waits for the lock: a failure here is one line and exit 2,
before this broker has taken the lock or bumped the epoch (docs/operations.md, section 6).

- The data directory is created if missing; we must be able to create files in it and to write the
  files already there (a lock file left by a broker run as another user, ...).
- The metrics port is bound by every broker, slaves included, so one in use is always fatal.
- A connector is bound only by the master. Several brokers of one group may run on one host with
  the same connector address (they never serve at once), so a slave finds its address taken by
  the master of its own directory: that is expected, and only a WARNING. The address in use is fatal
  only when no master of this directory runs on this host; any other bind error (an address this
  host does not have, a privileged port) is always fatal. What still fails at takeover (something
  took the port meanwhile) ends the term gracefully with exit 6 (broker.ha.master.ConnectorUnavailable).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path

from config.errors import BrokerError
from config.model import BrokerConfig, parse_connector
from stores.lock.registry import create_lock

log = logging.getLogger("batonmq.daemon")

PROBE = ".batonmq-write-check"


class PreflightError(BrokerError):
    """A reason the broker cannot start; its message is the one line printed."""


def preflight(config: BrokerConfig) -> None:
    """Raise PreflightError for the first problem found; log a WARNING for tolerated ones."""
    check_data_dir(config.data_dir)
    if config.metrics_port is not None:
        _check_bind("metrics port", config.metrics_host, config.metrics_port)
    if config.admin.port is not None:
        _check_bind("admin port", config.admin.host, config.admin.port)
    for uri in config.connectors:
        check_connector(uri, config)


def check_data_dir(path: Path) -> None:
    where = f"data directory {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PreflightError(f"{where}: exists and is not a directory") from None
    except OSError as exc:
        raise PreflightError(f"{where}: cannot create it: {_reason(exc)}") from None
    probe = path / f"{PROBE}.{os.getpid()}"
    try:
        # Permission bits alone do not say it (ACLs, a read-only mount, root squashing on NFS).
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise PreflightError(f"{where}: cannot create files in it: {_reason(exc)}") from None
    _check_files_writable(path, where)


def _check_files_writable(path: Path, where: str) -> None:
    """The files a previous broker left (lock, epoch, heartbeat, ...), e.g. one run as another user.
    Opened for writing and closed unchanged; we hold no lock yet, so closing one drops nothing."""
    for entry in os.scandir(path):
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.close(os.open(entry.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY))
        except OSError as exc:
            raise PreflightError(f"{where}: cannot write {entry.name}: {_reason(exc)}") from None


def check_connector(uri: str, config: BrokerConfig) -> None:
    address = parse_connector(uri)
    try:
        _bind_and_release(address.host, address.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise PreflightError(f"connector {uri}: cannot listen: {_reason(exc)}") from None
        master = _local_master(config)
        if master is None:
            raise PreflightError(f"connector {uri}: address already in use, and no master of "
                                 f"{config.data_dir} runs on this host") from None
        log.warning("broker %s: connector %s is in use, by %s presumably; it is bound on takeover",
                    config.name, uri, master)


def _check_bind(what: str, host: str, port: int) -> None:
    try:
        _bind_and_release(host, port)
    except OSError as exc:
        raise PreflightError(f"{what} {host}:{port}: cannot listen: {_reason(exc)}") from None


def _bind_and_release(host: str, port: int) -> None:
    """Bind each address `host` resolves to, as asyncio's create_server would, and close again."""
    if port == 0:
        return  # an ephemeral port is always free
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the real listeners do
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)


def _local_master(config: BrokerConfig) -> str | None:
    """The master of this data directory if it runs on this host (it may hold our address)."""
    lock = create_lock(config.lock.backend, config.data_dir)
    holder = lock.holder()
    if not lock.is_held() or holder is None or holder.host != socket.gethostname():
        return None
    return f"the master ({holder.describe()})"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.errno is not None else str(exc)
