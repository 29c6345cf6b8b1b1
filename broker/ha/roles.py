"""Broker roles and exit codes of `batonmq start` (design.md section 1)."""

from __future__ import annotations

import enum


class Role(enum.Enum):
    STARTING = "starting"
    SLAVE = "slave"
    RECOVERING = "recovering"
    MASTER = "master"
    STOPPING = "stopping"
    LOCK_LOST = "lock_lost"


class ExitCode(enum.IntEnum):
    OK = 0  # graceful stop after SIGTERM/SIGINT
    FAILED = 1  # unexpected error
    CONFIG = 2  # invalid configuration
    USAGE = 2  # the same code for a command line that cannot be obeyed (argparse says 2 too)
    LOCK_LOST = 3  # the master lost the lock and stopped serving
    STORE = 4  # the store refused to open: corrupted, or another store type's directory
    LOCK_TIMEOUT = 5  # no keep-alive check succeeded for lock_timeout (file system hung or failing)
    BIND = 6  # as master, a connector address could not be bound; the lock was released for another broker
    FORCED = 130  # a second signal forced the exit (or Ctrl-C stopped a client command)
