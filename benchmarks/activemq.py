"""ActiveMQ Classic for the comparison: install it from Debian's package where it is missing (and the
machine allows), run it as our own process on a temporary KahaDB and a loopback STOMP port, stop it.

The Debian package's service starts no broker by default (its instances-enabled/ is empty); we never
use the service: the broker here is a child process, stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.activemq_config import DEBIAN_HOME, DEBIAN_PACKAGE, Limits, java_command, write_base
from benchmarks.brokers import free_port
from benchmarks.e2e import Target, watched
from benchmarks.link import LinkError, StompLink
from benchmarks.report import progress

HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # a cold JVM on a busy 2-core machine; about 1.5 s when quiet
STOP_GRACE = 15.0  # SIGTERM runs the shutdown hook (KahaDB checkpoint); SIGKILL after this
APT_TIMEOUT = 900.0


def installed(home: Path) -> bool:
    return (home / "bin" / "activemq.jar").exists()


def java_binary() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def _privilege() -> list[str] | None:
    """[] as root, ["sudo", "-n"] with password-less sudo, None if we may not install packages."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True, timeout=10).returncode == 0:
        return [sudo, "-n"]
    return None


def why_not_installable() -> str | None:
    if not sys.platform.startswith("linux") or shutil.which("apt-get") is None:
        return "this machine has no apt-get (Debian's activemq package needs a Debian-like system)"
    if _privilege() is None:
        return "installing a package needs root or password-less sudo"
    return None


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    prefix = _privilege() or []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run([*prefix, "apt-get", "-q", "-o", "DPkg::Lock::Timeout=120", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=APT_TIMEOUT)


def install() -> str | None:
    """apt-get install activemq (after apt-get update if the package is unknown); None or why not."""
    reason = why_not_installable()
    if reason is not None:
        return reason
    progress(f"installing ActiveMQ: apt-get install {DEBIAN_PACKAGE} (Debian package)")
    attempt = _apt(["install", "-y", "--no-install-recommends", DEBIAN_PACKAGE])
    if attempt.returncode != 0 and "Unable to locate package" in attempt.stderr:
        progress("the package lists do not know it: apt-get update")
        _apt(["update"])
        attempt = _apt(["install", "-y", "--no-install-recommends", DEBIAN_PACKAGE])
    if attempt.returncode != 0:
        return f"apt-get install {DEBIAN_PACKAGE} failed: {attempt.stderr.strip()[-500:]}"
    return None


def ensure_available(home: Path) -> str | None:
    """None when ActiveMQ and a Java runtime are there (installing Debian's package if it may), else why."""
    if not installed(home):
        if home != DEBIAN_HOME:
            return f"no ActiveMQ at {home} (bin/activemq.jar is missing)"
        reason = install()
        if reason is not None:
            return reason
        if not installed(home):
            return f"the {DEBIAN_PACKAGE} package is installed but {home}/bin/activemq.jar is missing"
    if java_binary() is None:
        return "no Java runtime (java on PATH or JAVA_HOME)"
    return None


class ActiveMQProcess:
    """One ActiveMQ JVM, a child in its own session; stdout and stderr go to base/activemq.log."""

    def __init__(self, home: Path, base: Path, port: int, limits: Limits = Limits()) -> None:
        self.home, self.base, self.port, self.limits = home, base, port, limits
        self.log_path = base / "activemq.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ActiveMQProcess:
        java = java_binary()
        if java is None:
            raise RuntimeError("no Java runtime")
        write_base(self.base, HOST, self.port, self.limits)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(java_command(java, self.home, self.base, self.limits), cwd=self.base,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str | None:
        """The CONNECTED frame's server header (e.g. ActiveMQ/5.17.2) once STOMP answers; None if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive:
            with contextlib.suppress(OSError, LinkError, TimeoutError):
                return asyncio.run(_connect(HOST, self.port))
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        """SIGTERM to our PID, SIGKILL after STOP_GRACE seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, count: int = 30) -> str:
        try:
            lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-count:])


async def _connect(host: str, port: int) -> str:
    link = await StompLink.open(host, port, timeout=2.0)
    try:
        return link.server or "ActiveMQ"
    finally:
        await link.disconnect(2.0)


@contextlib.contextmanager
def activemq_broker(home: Path, limits: Limits = Limits()) -> Iterator[Target]:
    """A fresh ActiveMQ on a temporary KahaDB and a free loopback port; stopped and removed after."""
    base = Path(tempfile.mkdtemp(prefix="activemq-bench-"))
    broker = ActiveMQProcess(home, base, free_port((HOST,)), limits)
    try:
        broker.start()
        server = broker.wait_ready()
        if server is None:
            raise RuntimeError(f"ActiveMQ did not answer STOMP CONNECT within {START_TIMEOUT:.0f} s "
                               f"(exit code {broker.returncode}):\n{broker.tail()}")
        with watched(broker):
            yield Target(server.replace("/", " "), HOST, broker.port)
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
