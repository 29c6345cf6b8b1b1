"""The backlog benchmark's pieces: the drain's order check, the goals, the command line, and its
producers and consumer against a real broker process (a backlog, a restart, the whole drain)."""

import asyncio
import signal
import time
from dataclasses import replace

import pytest

from benchmarks import backlog
from benchmarks.backlog_clients import Drained, OrderCheck, drain, produce_backlog
from benchmarks.backlog_goals import MET, MISSED, NOT_APPLICABLE, Goals, table, verdict_lines, verdicts
from benchmarks.brokers import BrokerProcess, free_port
from transports.stomp import Frame

HOST = "127.0.0.1"


def message(tag, seq, redelivered=False):
    headers = {"bench-producer": tag, "bench-seq": str(seq)}
    if redelivered:
        headers["redelivered"] = "true"
    return Frame("MESSAGE", headers)


def test_order_check_counts_duplicates_order_breaks_extras_and_foreign_messages():
    result = Drained(expected=6)
    check = OrderCheck({"p0": 3, "p1": 3}, result)
    for frame in (message("p0", 0), message("p1", 0, True), message("p0", 2), message("p0", 1),
                  message("p0", 2), message("p1", 1), message("p1", 5), Frame("MESSAGE", {"x": "1"}),
                  message("p9", 0)):
        check.note(frame)
    assert (result.count, result.distinct, result.duplicates) == (7, 5, 1)
    assert result.out_of_order == 1  # p0's 1 after its 2 (the second 2 is a duplicate, not a break)
    assert (result.extra, result.foreign, result.redelivered, result.missing) == (1, 2, 1, 1)
    assert not result.complete_in_order


def test_order_check_accepts_a_complete_ordered_drain_interleaved_across_producers():
    result = Drained(expected=4)
    check = OrderCheck({"p0": 2, "p1": 2}, result)
    for frame in (message("p1", 0), message("p0", 0), message("p0", 1), message("p1", 1)):
        check.note(frame)
    assert result.complete_in_order and result.missing == 0


def outcome(store="journal", count=1_000_000, peak=200.0, rate=9000.0, ref=10_000.0, recovery=1.5,
            takeover=0.2, complete=True):
    return {"store": store, "count": count, "error": None, "ref_rate": ref,
            "produce": {"count": count, "rate": 8000.0, "broker_cores": 1.0, "client_cores": 0.1,
                        "errors": []},
            "rss": {"peak_mib": peak, "after_drain_mib": 100.0},
            "cold": {"recovery_s": recovery}, "warm": {"kill_to_receipt_s": takeover},
            "drain": {"rate": rate, "distinct": count, "expected": count, "complete_in_order": complete}}


def test_goals_met_missed_and_not_applicable():
    goals = Goals()
    assert set(verdicts(outcome(), goals).values()) == {MET}
    missed = verdicts(outcome(peak=300.0, rate=7000.0, recovery=2.5, takeover=0.3, complete=False), goals)
    assert missed.pop("all N receipted") == MET and set(missed.values()) == {MISSED}
    short = outcome()
    short["produce"] = {**short["produce"], "count": 808_000, "errors": ["p0: LinkError: destination full"]}
    assert verdicts(short, goals)["all N receipted"] == MISSED
    lines = verdict_lines([short], goals)
    assert any("808,000 of 1,000,000 receipted; LinkError: destination full" in line for line in lines)
    # The time goals are stated at 1M (10M is measured only); the takeover goal for the journal only.
    long = verdicts(outcome(count=10_000_000, recovery=30.0, takeover=3.0), goals)
    assert [v for k, v in long.items() if "recovery" in k or "-> receipt" in k] == [NOT_APPLICABLE] * 2
    other = verdicts(outcome(store="leveldb", takeover=3.0), goals)
    assert [v for k, v in other.items() if "-> receipt" in k] == [NOT_APPLICABLE]
    assert verdicts(outcome(ref=None), goals)["drain >= 80% of in-window"] == MISSED
    assert verdicts({**outcome(), "error": "TimeoutError: x"}, goals) == {"ran": MISSED}


def test_table_names_the_missed_goals_and_a_run_that_failed():
    text = table([outcome(peak=300.0), {**outcome(count=5), "error": "RuntimeError: no"}], Goals())
    assert "RSS <= 256 MiB" in text and "did not run: RuntimeError: no" in text
    assert text.count("\n") == 3


def test_command_line_sizes_and_stores():
    assert backlog._parse_args([]).counts == (100_000, 1_000_000)
    assert backlog._parse_args(["--quick"]).counts == (20_000, 100_000)
    assert backlog._parse_args(["--long"]).counts[-1] == 10_000_000
    assert backlog._stores(backlog._parse_args([])) == ("journal",)
    assert backlog._stores(backlog._parse_args(["--stores", "all"])) == backlog.STORES
    assert backlog._stores(backlog._parse_args(["--store", "leveldb", "--stores", "leveldb,journal"])) == (
        "leveldb", "journal")
    with pytest.raises(SystemExit):
        backlog._stores(backlog._parse_args(["--stores", "redis"]))
    with pytest.raises(SystemExit):
        backlog._parse_args(["--count", "0"])
    plain = backlog.Plan(("journal",), (1,), 1, 1, "auto", 1, None)
    assert plain.broker_args() == ()
    assert replace(plain, cursor_window="8mb").broker_args() == ("--cursor-window", "8mb")


def test_a_real_backlog_survives_kill_and_drains_complete_and_in_order(tmp_path):
    broker = BrokerProcess("bl", HOST, free_port((HOST,)), tmp_path / "data").start()
    try:
        assert broker.wait_accepting(30), broker.tail()
        made = asyncio.run(produce_backlog(HOST, broker.port, "/queue/bl", 2500, 3, 1024, 60.0, "produce"))
        assert made.count == 2500 and not made.errors
        assert sorted(made.per_producer.values()) == [833, 833, 834]
        broker.signal(signal.SIGKILL)
        assert broker.wait_exit(10) is not None
        broker.start()
        assert broker.wait_accepting(30), broker.tail()
        began = time.monotonic()
        result = asyncio.run(drain(HOST, broker.port, "/queue/bl", made.per_producer, "client-individual",
                                   100, 60.0, "drain"))
        assert result.complete_in_order and result.distinct == 2500, result
        assert result.redelivered == 2500  # stored before this broker's start: all flagged
        assert 0 < result.first_s < result.first_s + result.elapsed <= time.monotonic() - began
        assert result.rate > 0
    finally:
        broker.stop()
