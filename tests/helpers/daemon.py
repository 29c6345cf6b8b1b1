"""`python -m broker start ARGS...` as a real process whose stderr lines are collected as they come.

For the command-line tests that need the daemon's own arguments (a config file, no --data); the
HA tests' fixed-argument brokers are tests/helpers/cluster.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Dropping these two capabilities makes file permissions apply to root too (the tests run as root
# in CI containers), so a test can meet "permission denied" as an unprivileged operator would.
DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def without_dac_override() -> list[str]:
    """The command prefix that makes permission bits bind this process ([] when not root)."""
    return DROP_DAC if os.geteuid() == 0 else []


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATONMQ_", "ACTIVEMQ_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Daemon:
    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None,
                 prefix: Sequence[str] = ()) -> None:
        command = [*prefix, sys.executable, "-m", "broker", "start", *args]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=clean_env(env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first stderr line matching `pattern`; fails with the log if none comes in time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match
            if self.proc.poll() is not None:
                self._reader.join(5)
                if any(regex.search(line) for line in self.lines):
                    continue
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}; log:\n{self.text()}")

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> int:
        """SIGTERM (the graceful stop) and the exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.wait_exit()

    def kill(self) -> None:
        """SIGKILL if still running; then release the pipe (each test ends with this)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def daemon(args: Sequence[str], env: dict[str, str] | None = None,
           prefix: Sequence[str] = ()) -> Iterator[Daemon]:
    started = Daemon(args, env, prefix)
    try:
        yield started
    finally:
        started.kill()
