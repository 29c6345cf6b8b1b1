from __future__ import annotations

import pytest

from broker.lease import Lease, LeaseLost


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Verifier:
    def __init__(self) -> None:
        self.calls = 0
        self.fail: str | None = None

    def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError(self.fail)


def test_valid_within_period_without_rechecking():
    clock, verify = Clock(), Verifier()
    lease = Lease(0.5, verify, clock)
    lease.renew()
    clock.now += 0.4
    assert lease.valid()
    assert verify.calls == 1


def test_expired_lease_rechecks_before_answering():
    clock, verify = Clock(), Verifier()
    lease = Lease(0.5, verify, clock)
    lease.renew()
    clock.now += 5.0  # e.g. the process was SIGSTOPped
    assert lease.valid()
    assert verify.calls == 2
    assert lease.age() == 0.0


def test_failed_recheck_after_pause_loses_the_lease_for_good():
    clock, verify = Clock(), Verifier()
    lease = Lease(0.5, verify, clock)
    lease.renew()
    clock.now += 5.0
    verify.fail = "lock file replaced"
    assert not lease.valid()
    assert lease.lost == "lock file replaced"
    verify.fail = None
    assert not lease.valid()  # never comes back: a new term needs a new lease
    with pytest.raises(LeaseLost):
        lease.renew()


def test_never_renewed_lease_checks_first():
    clock, verify = Clock(), Verifier()
    lease = Lease(0.5, verify, clock)
    assert lease.valid()
    assert verify.calls == 1
