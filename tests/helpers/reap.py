"""Ending a test's child process: kill -9 it on purpose, or make sure it is gone whatever happened."""

from __future__ import annotations

import signal
import subprocess


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def reap(proc: subprocess.Popen[str]) -> None:
    """For a `finally`: the process is killed if it still runs, and its stdout pipe closed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
