"""A shared file system that is slow, hangs or fails: a real FUSE mount the test steers.

The master runs on the FUSE mount (tests/helpers/freezefs.py), a passthrough of the shared
directory. Slow I/O must never depose it. A frozen or failing mount must end it (exit 5) within
lock_timeout plus a bound, even with threads stuck in I/O, and a slave that reaches the same
directory by a healthy path may take over only after its quiet time: never two masters.

Locks taken through the mount and on the directory itself do not exclude each other, so the
slave on the healthy path gets the lock at once, as a successor does once an NFSv4 lease has
expired under a master that is cut off. Only the heartbeat and the lock timeout keep the two
apart, which is what these tests check.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers import freezefs
from tests.helpers.cluster import HOSTS, AcceptMonitor, BrokerProc, free_port, wait_for_single_master
from tests.helpers.rawstomp import RawStomp

pytestmark = [
    pytest.mark.ha,
    pytest.mark.skipif(freezefs.unavailable() is not None, reason=f"FUSE: {freezefs.unavailable()}"),
]

EXIT_LOCK_TIMEOUT = 5
LOCK_TIMEOUT = 2.0  # tests/helpers/cluster.py starts every broker with --lock-timeout 2
KEEPALIVE = 0.3
EXIT_BOUND = 2.0  # broker.ha.master.EXIT_BOUND
SLACK = 2.0  # process exit and scheduling on a loaded 2-core machine


@pytest.fixture
def mount(tmp_path):
    fs = freezefs.FreezeMount(tmp_path / "shared", tmp_path / "mnt")
    yield fs
    fs.close()


@pytest.fixture
def brokers():
    started: list[BrokerProc] = []
    yield started
    for broker in started:
        broker.stop()


def start(brokers: list[BrokerProc], name: str, host: str, port: int, data: Path) -> BrokerProc:
    broker = BrokerProc(name, host, port, data).start()
    brokers.append(broker)
    return broker


def send_receipted(broker: BrokerProc, destination: str, bodies: list[str], timeout: float = 10) -> None:
    with RawStomp(broker.host, broker.port, timeout=timeout) as client:
        assert client.connect().startswith("CONNECTED")
        for i, body in enumerate(bodies):
            client.send_frame("SEND", {"destination": destination, "persistent": "true",
                                       "receipt": f"r{i}"}, body.encode())
            reply = client.read_frame(timeout)
            assert reply.startswith("RECEIPT"), reply


def first_time(broker: BrokerProc, text: str) -> float:
    """When `broker` first logged a line containing `text` (the test's clock)."""
    return next(at for at, line in broker.lines if text in line)


def drain(broker: BrokerProc, destination: str, expected: int) -> list[str]:
    with RawStomp(broker.host, broker.port, timeout=5) as client:
        assert client.connect().startswith("CONNECTED")
        client.send_frame("SUBSCRIBE", {"destination": destination, "id": "s", "ack": "auto"})
        bodies = []
        for _ in range(expected):
            frame = client.read_frame(5.0)
            assert frame.startswith("MESSAGE"), frame
            bodies.append(frame.rstrip("\x00").split("\n\n", 1)[1])
        return bodies


def test_slow_lock_io_does_not_depose_the_master(tmp_path, mount, brokers):
    port = free_port()
    master = start(brokers, "b1", HOSTS[0], port, mount.mountpoint)
    wait_for_single_master([master], timeout=20)
    # Every file-system call now takes 60 ms: a keep-alive check takes several periods (0.3 s),
    # yet one check still succeeds well within each lock_timeout.
    mount.command("slow 60")
    started = time.monotonic()
    while time.monotonic() - started < 4.0:
        send_receipted(master, "/queue/slow", ["during slow I/O"])
        assert master.serving()
    mount.command("slow 0")
    time.sleep(3 * KEEPALIVE)
    assert master.proc is not None and master.proc.poll() is None, master.log_text()
    assert master.role == "master"
    assert "lock check took" in master.log_text()  # it did see the slow checks, and said so
    assert "lock checks answer in time again" in master.log_text()
    assert "lock_lost" not in master.log_text()


@pytest.mark.parametrize("fault", ["freeze", "eio"])
def test_stalled_file_system_ends_the_master_and_a_slave_takes_over_after_quiet_time(
    tmp_path, mount, brokers, fault
):
    port = free_port()
    master = start(brokers, "b1", HOSTS[0], port, mount.mountpoint)
    wait_for_single_master([master], timeout=20)
    send_receipted(master, "/queue/kept", ["before the fault"])
    slave = None
    with AcceptMonitor([master], level="stomp") as monitor:
        mount.command(fault)
        faulted = time.monotonic()
        # The same directory by a path that still answers: this broker gets the lock at once.
        slave = start(brokers, "b2", HOSTS[1], port, tmp_path / "shared")
        monitor.brokers.append(slave)
        code = master.wait_exit(LOCK_TIMEOUT + EXIT_BOUND + SLACK + 5)
        exited_after = time.monotonic() - faulted
        successor = wait_for_single_master([slave], timeout=20)
        time.sleep(0.5)
    assert code == EXIT_LOCK_TIMEOUT, master.log_text()
    bound = LOCK_TIMEOUT + EXIT_BOUND + SLACK
    assert exited_after < bound, f"master exited {exited_after:.2f} s after the {fault}"
    assert "the shared file system is not answering" in master.log_text()
    assert monitor.violations == [], monitor.violations
    assert monitor.samples > 10
    # Either the master was still alive and the successor waited out its heartbeat for the whole
    # quiet time, or the master had exited (same host: its pid is gone). Both only after the
    # master stopped answering.
    reason = re.search(r"safe to take over: (.*)", successor.log_text())
    assert reason is not None, successor.log_text()
    stale = re.match(r"previous master's heartbeat stale for ([\d.]+) s", reason.group(1))
    if stale is not None:
        assert float(stale.group(1)) >= LOCK_TIMEOUT + KEEPALIVE  # quiet = lock_timeout + margin
    else:
        assert "no longer exists on this host" in reason.group(1), reason.group(1)
    assert first_time(successor, "STOMP connector listening") > first_time(master, "-> lock_lost")
    mount.command("thaw" if fault == "freeze" else "ok")
    assert drain(successor, "/queue/kept", 1) == ["before the fault"]
