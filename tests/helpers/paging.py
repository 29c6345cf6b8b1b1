"""A real broker process with a tiny store cursor window, restarted or killed -9 in place.

The paging tests keep most of a queue in the store (`--cursor-window`, `[store] cursor_window`,
docs/paging.md). Until a broker has the setting they skip, found by feature detection on
`batonmq start --help`, so that the tests can land before or after the cursor itself.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers.cluster import serves
from tests.helpers.daemon import ROOT, Daemon, clean_env

HOST = "127.0.0.1"
WINDOW = "4kb"  # with ~1 KiB bodies: about four messages in memory, the rest paged
BODY_SIZE = 1000


@functools.cache
def cursor_window_supported() -> bool:
    """True if this broker's `start` takes --cursor-window (the store cursor is in)."""
    out = subprocess.run([sys.executable, "-m", "broker", "start", "--help"], cwd=ROOT, env=clean_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    return "--cursor-window" in out.stdout


def require_cursor_window() -> None:
    if not cursor_window_supported():
        pytest.skip("`batonmq start --help` lists no --cursor-window: this broker has no store cursor "
                    "(issue 12), so nothing would be paged")


def window_args(window: str = WINDOW) -> list[str]:
    return ["--cursor-window", window]


def window_config(path: Path, window: str = WINDOW) -> Path:
    """A config file that sets the window by its TOML name, for `--config`."""
    path.write_text(f'[store]\ncursor_window = "{window}"\n')
    return path


def body_for(tag: str, size: int = BODY_SIZE) -> str:
    """A body of `size` characters that names its message, so a mix-up is visible in a failure."""
    return (tag + "." * size)[:size]


class BrokerProcess:
    """One broker on 127.0.0.1:`port` over `data_dir`; start, stop (SIGTERM) or kill -9, start again."""

    def __init__(self, data_dir: Path, port: int, store: str, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.args = ["--name", "paged", "--data", str(data_dir), "--store", store,
                     "--connector", f"tcp://{HOST}:{port}", *extra]
        self.env = env
        self.port = port
        self.daemon: Daemon | None = None
        self.logs: list[str] = []  # every earlier process's stderr, for failure messages

    def start(self, timeout: float = 30.0, wait: bool = True) -> BrokerProcess:
        """A new process; with `wait`, once it answers CONNECT (it recovered and serves)."""
        self._retire()
        self.daemon = Daemon(self.args, self.env)
        deadline = time.monotonic() + timeout
        while wait and not serves(HOST, self.port):
            if self.daemon.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the broker did not serve within {timeout} s; log:\n{self.log()}")
            time.sleep(0.02)
        return self

    def kill9(self) -> None:
        assert self.daemon is not None
        os.kill(self.daemon.proc.pid, signal.SIGKILL)
        self.daemon.wait_exit(10)

    def stop(self) -> int:
        """SIGTERM and the exit code (0 for a clean stop)."""
        assert self.daemon is not None
        return self.daemon.stop()

    def running(self) -> bool:
        return self.daemon is not None and self.daemon.proc.poll() is None

    def _retire(self) -> None:
        if self.daemon is not None:
            self.daemon.kill()
            self.logs.append(self.daemon.text())
            self.daemon = None

    def close(self) -> None:
        if self.daemon is not None:
            if self.daemon.proc.poll() is None:
                self.daemon.stop()
            self._retire()

    def log(self, tail: int = 4000) -> str:
        current = [self.daemon.text()] if self.daemon is not None else []
        return "\n--- restart ---\n".join(self.logs + current)[-tail:]
