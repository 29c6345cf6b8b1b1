"""The keep-alive thread and the watchdog: which failures lose the lock, and when a term times out.

The check function is the seam: here it raises the same exceptions the real lock, fence and
heartbeat raise (tests/ha and tests/integration/test_frozen_fs.py drive the real ones).
"""

from __future__ import annotations

import threading
import time

from broker.ha.keepalive import KeepAliveThread
from broker.ha.lease import Lease
from broker.ha.watchdog import Watchdog
from stores.lock.identity import LockLost, LockUnanswered

PERIOD = 0.02


class Script:
    """A check that answers from a list, then keeps answering the last item."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> None:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, float):
            time.sleep(outcome)


def run_keepalive(check: Script, lease: Lease, seconds: float) -> list[str]:
    lost: list[str] = []
    thread = KeepAliveThread(check, lease, PERIOD, lost.append)
    thread.start()
    time.sleep(seconds)
    thread.stop()
    assert thread.join(2.0)
    return lost


def test_a_no_from_the_check_is_lost_at_once():
    lease = Lease(5.0)
    lost = run_keepalive(Script(None, LockLost("lock file x was replaced by another file")), lease, 0.3)
    assert lost == ["lock file x was replaced by another file"]


def test_io_errors_and_slow_checks_are_no_answer_not_a_loss():
    lease = Lease(5.0)
    check = Script(LockUnanswered("EIO"), OSError(5, "EIO"), 3 * PERIOD, None)
    lost = run_keepalive(check, lease, 0.4)
    assert lost == []
    assert check.calls > 4
    assert lease.valid()  # the later, successful checks renewed it


def test_only_successful_checks_renew_the_lease():
    lease = Lease(0.2)
    lost = run_keepalive(Script(None, LockUnanswered("EIO")), lease, 0.4)
    assert lost == []
    assert lease.expired()  # nothing succeeded for longer than the lease: the watchdog's cue


def test_a_failing_check_is_logged_once_per_episode(caplog):
    lease = Lease(5.0)
    run_keepalive(Script(LockUnanswered("EIO")), lease, 0.3)
    warnings = [r for r in caplog.records if "lock check failed" in r.getMessage()]
    assert len(warnings) == 1


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.done.set()


def test_watchdog_fires_when_the_lease_expires_then_forces_the_exit():
    lease = Lease(0.2)
    lease.renew(time.monotonic())
    timeouts: list[str] = []
    exits = Exits()
    dog = Watchdog(lease, timeouts.append, 5, exit_bound=0.2, grace=0.1, tick=0.01, hard_exit=exits)
    started = time.monotonic()
    dog.start()
    assert exits.done.wait(3.0)
    took = time.monotonic() - started
    assert len(timeouts) == 1 and "lock_timeout 0.2 s" in timeouts[0]
    assert exits.codes == [5]
    assert 0.2 + 0.2 <= took < 0.2 + 0.2 + 1.0


def test_watchdog_stays_quiet_while_the_lease_is_renewed():
    lease = Lease(1.0)  # long beside the 10 ms renewals: a busy machine may delay one by far more
    timeouts: list[str] = []
    exits = Exits()
    dog = Watchdog(lease, timeouts.append, 5, exit_bound=0.1, grace=0.1, tick=0.01, hard_exit=exits)
    lease.renew(time.monotonic())
    dog.start()
    for _ in range(40):
        lease.renew(time.monotonic())
        time.sleep(0.01)
    dog.stop()
    time.sleep(0.1)
    assert timeouts == [] and exits.codes == []


def test_a_stopped_watchdog_that_fired_still_forces_the_exit():
    lease = Lease(0.05)
    timeouts: list[str] = []
    exits = Exits()
    dog = Watchdog(lease, lambda reason: (timeouts.append(reason), dog.stop()), 5,
                   exit_bound=0.1, grace=0.05, tick=0.01, hard_exit=exits)
    dog.start()
    assert exits.done.wait(3.0)  # the graceful path may itself hang on the file system
    assert exits.codes == [5]


def test_watchdog_gives_a_frozen_process_grace_to_hear_the_keepalive():
    class JumpClock:
        """Monotonic time that leaps forward once, as it does across a SIGSTOP."""

        def __init__(self) -> None:
            self.offset = 0.0

        def __call__(self) -> float:
            return time.monotonic() + self.offset

    clock = JumpClock()
    # Lease and grace are long beside the test's own sleeps, so that a busy machine delaying a
    # thread by a few hundred ms does not expire the renewed lease before stop().
    lease = Lease(2.0, clock)
    lease.renew(clock())
    timeouts: list[str] = []
    exits = Exits()
    dog = Watchdog(lease, timeouts.append, 5, exit_bound=0.1, grace=1.0, tick=0.01, clock=clock,
                   hard_exit=exits)
    dog.start()
    time.sleep(0.05)
    clock.offset += 10.0  # the whole process was frozen for 10 s
    time.sleep(0.05)
    lease.renew(clock())  # the keep-alive thread answered within the grace
    time.sleep(0.3)
    dog.stop()
    assert timeouts == [] and exits.codes == []
