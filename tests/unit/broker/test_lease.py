from __future__ import annotations

from broker.ha.lease import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_valid_for_its_duration_after_the_check_began():
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(clock.now - 1.0)  # a check that began a second ago and just succeeded
    clock.now += 3.9
    assert lease.valid() and not lease.expired()
    clock.now += 0.2
    assert not lease.valid() and lease.expired()


def test_never_renewed_lease_is_not_valid():
    lease = Lease(5.0, Clock())
    assert not lease.valid() and lease.expired()


def test_an_older_check_never_moves_the_lease_back():
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(clock.now)
    lease.renew(clock.now - 4.0)
    clock.now += 4.5
    assert lease.valid()
    assert lease.age() == 4.5


def test_lost_is_for_good_and_not_expired():
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(clock.now)
    lease.lost = "lock file replaced"
    assert not lease.valid() and not lease.expired()
    lease.renew(clock.now + 1)  # a late success from a check already in flight changes nothing
    assert not lease.valid()

