"""The delay after failed logins: doubling per failure, parallel attempts queued, bounded table."""

from __future__ import annotations

import pytest

from broker.engine.auth import host_of
from broker.engine.login import FORGET_AFTER, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_each_failure_doubles_the_wait_up_to_the_cap(clock: Clock) -> None:
    throttle = LoginThrottle(0.5, 4.0, clock=clock)
    assert throttle.admit("a") == 0.0
    waits = []
    for _ in range(5):
        throttle.failed("a")
        wait = throttle.admit("a")
        assert wait is not None
        waits.append(wait)
        clock.now += wait  # the attempt waits its turn, then fails again
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert throttle.admit("b") == 0.0  # per address


def test_parallel_attempts_queue_and_past_the_cap_are_refused_unchecked(clock: Clock) -> None:
    throttle = LoginThrottle(1.0, 3.0, clock=clock)
    throttle.failed("a")
    assert [throttle.admit("a") for _ in range(4)] == [1.0, 2.0, 3.0, None]


def test_success_with_credentials_resets_and_quiet_addresses_are_forgotten(clock: Clock) -> None:
    throttle = LoginThrottle(1.0, 8.0, clock=clock)
    for _ in range(3):
        throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.admit("a") == 0.0
    throttle.failed("b")
    clock.now += FORGET_AFTER + 1
    assert throttle.admit("b") == 0.0 and len(throttle) == 0


def test_the_table_is_bounded_oldest_failure_first(clock: Clock) -> None:
    throttle = LoginThrottle(1.0, 8.0, max_addresses=3, clock=clock)
    for address in ("a", "b", "c", "d"):
        throttle.failed(address)
        clock.now += 0.01
    assert len(throttle) == 3 and throttle.admit("a") == 0.0 and throttle.admit("d") != 0.0


@pytest.mark.parametrize(("peer", "host"), [("127.0.0.1:5000", "127.0.0.1"), ("::1:5000", "::1"),
                                            ("[fe80::1]:80", "fe80::1"), ("mem", "mem")])
def test_host_of_a_peer(peer: str, host: str) -> None:
    assert host_of(peer) == host
