"""Hot standby (journal and append-log stores): a slave tails the store and takes over warm after kill -9.

Two real broker processes share one directory. After the slave reports its standby ready, more
messages are sent (the final catch-up must replay them), some are consumed, and the master is
killed with SIGKILL. The successor must say it used its warm state, and deliver every receipted,
unacknowledged message exactly once, flagged `redelivered:true`, and nothing else.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.helpers.cluster import BrokerProc, wait_for_single_master
from tests.helpers.stomppy import drain, send_receipted

pytestmark = pytest.mark.ha

READY = "hot standby ready"


def wait_for_line(broker: BrokerProc, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log_text():
            return True
        time.sleep(0.05)
    return False


FOLLOWED = ["journal", "appendlog"]


@pytest.mark.parametrize("store", FOLLOWED)
def test_slave_takes_over_warm_after_kill9(cluster, store):
    brokers = cluster(2, store=store)
    master = wait_for_single_master(brokers, timeout=20)
    slave = next(b for b in brokers if b is not master)
    early = [f"early-{i}" for i in range(2000)]
    assert send_receipted(master.host, master.port, "/queue/hot", early) == early
    assert wait_for_line(slave, READY, timeout=20), slave.log_text()
    late = [f"late-{i}" for i in range(500)]  # written while the slave follows
    assert send_receipted(master.host, master.port, "/queue/hot", late) == late
    consumed = drain(master.host, master.port, "/queue/hot", idle=1.0, limit=300)
    assert [f.body for f in consumed] == early[:300]
    master.signal(signal.SIGKILL)
    successor = wait_for_single_master([slave], timeout=15)
    log = successor.log_text()
    assert "hot standby: adopted the warm broker" in log, log
    assert "warm: a follower's state" in log, log
    frames = drain(successor.host, successor.port, "/queue/hot", idle=1.0)
    got = [f.body for f in frames]
    expected = early[300:] + late
    assert len(got) == len(set(got)), "a message was delivered twice"
    missing, extra = sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5]
    assert got == expected, f"missing {missing}, extra {extra}"
    assert all(f.headers.get("redelivered") == "true" for f in frames)


@pytest.mark.parametrize("store", FOLLOWED)
def test_restarted_slave_follows_the_new_master(cluster, store):
    """After a failover the old master comes back as a slave and follows the new master warm."""
    brokers = cluster(2, store=store)
    first = wait_for_single_master(brokers, timeout=20)
    second = next(b for b in brokers if b is not first)
    assert wait_for_line(second, READY, timeout=20), second.log_text()
    bodies = [f"m-{i}" for i in range(300)]
    assert send_receipted(first.host, first.port, "/queue/again", bodies) == bodies
    first.signal(signal.SIGKILL)
    assert wait_for_single_master([second], timeout=15) is second
    first.wait_exit(10)
    first.start()  # back as a slave of the new master
    assert wait_for_line(first, READY, timeout=20), first.log_text()
    more = [f"n-{i}" for i in range(200)]
    assert send_receipted(second.host, second.port, "/queue/again", more) == more
    second.signal(signal.SIGKILL)
    assert wait_for_single_master([first], timeout=15) is first
    assert "hot standby: adopted the warm broker" in first.log_text()
    frames = drain(first.host, first.port, "/queue/again", idle=1.0)
    assert [f.body for f in frames] == bodies + more
    assert all(f.headers.get("redelivered") == "true" for f in frames)
