"""The fairness benchmark's pure parts: summaries, verdicts, and the sizes of the hostile payloads."""

import os
from dataclasses import asdict

import pytest

from benchmarks import hostile_payloads as payloads
from benchmarks.fairness import FULL, QUICK, SCENARIOS, RssSampler, scenario_budget
from benchmarks.fairness_goals import (
    Goals,
    default_budget,
    gc_pauses,
    lock_lost,
    misses,
    peak_rss_mib,
    table,
    victim_summary,
)
from benchmarks.hostile import Report, loads
from benchmarks.victim import VictimResult
from config.model import Limits
from transports.stomp import StompParser

MiB = 1024 * 1024


def _victim(latencies, **counts):
    result = VictimResult(sent=len(latencies), receipted=len(latencies), latencies=list(latencies),
                          received=len(latencies), delivery=list(latencies))
    for name, value in counts.items():
        setattr(result, name, value)
    return victim_summary(asdict(result))


def _outcome(victim, rss=50.0, exit_code=None, lost=False, checks=None):
    return {"key": "k", "error": None, "victim": victim, "hostile": asdict(Report(checks=checks or {})),
            "broker": {"rss_max_mib": rss, "exit_code": exit_code, "lock_lost": lost}}


def test_victim_summary_percentiles_and_counts():
    summary = _victim([float(i) for i in range(1, 101)], missing=2, error_count=1, errors=["x"])
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100.0
    assert (summary["sent"], summary["receipted"], summary["missing"], summary["errors"]) == (100, 100, 2, 1)
    assert summary["error_lines"] == ["x"] and summary["delivery_p99"] == pytest.approx(99.01)


def test_a_fast_fair_run_meets_the_goal():
    assert misses(_outcome(_victim([1.0] * 99 + [40.0])), Goals(), budget_mib=512) == []


def test_each_missed_goal_is_named():
    slow = _victim([1.0] * 90 + [300.0] * 10, missing=3, error_count=2)
    found = misses(_outcome(slow, rss=700.0, exit_code=3, lost=True, checks={"new client admitted": False}),
                   Goals(), budget_mib=512)
    assert found == ["p99 300 > 50 ms", "max 300 > 250 ms", "3 receipts missing", "2 victim errors",
                     "RSS 700 > 612 MiB", "lock lost", "broker exited (code 3)", "new client admitted: no"]


def test_rss_goal_is_budget_plus_headroom():
    fast = _victim([1.0] * 10)
    assert misses(_outcome(fast, rss=612.0), Goals(), budget_mib=512) == []
    assert misses(_outcome(fast, rss=612.1), Goals(), budget_mib=512) == ["RSS 612 > 612 MiB"]


def test_no_receipts_and_scenario_errors_are_misses():
    assert misses(_outcome(_victim([])), Goals(), 512) == ["no receipts"]
    assert misses({"key": "k", "error": "boom"}, Goals(), 512) == ["did not run: boom"]


def test_lock_loss_from_role_or_exit_code():
    assert lock_lost(["slave", "master", "lock_lost"], None)
    assert lock_lost(["master"], 3) and lock_lost(["master"], 5)
    assert not lock_lost(["slave", "master", "stopping"], 0)
    assert not lock_lost(["master"], None)


def test_peak_rss_takes_samples_and_high_water_mark():
    assert peak_rss_mib([1024, 2048], 4096) == 4.0
    assert peak_rss_mib([3072], None) == 3.0
    assert peak_rss_mib([], None) is None


def test_rss_sampler_reads_proc_status():
    sampler = RssSampler(os.getpid())
    sampler.look()
    assert sampler.samples == 1 and sampler.max_kib > 0 and sampler.high_water_kib >= sampler.max_kib
    gone = RssSampler(2**22 + 1)  # above the kernel's pid_max: never a live process
    gone.look()
    assert gone.samples == 0 and gone.high_water_kib is None


def test_budget_is_the_brokers_default_memory_budget():
    budget, source = default_budget(Limits())
    assert 64 * MiB <= budget <= 4096 * MiB and source.startswith("limits.memory_budget")
    assert default_budget(Limits(memory_budget=256 * MiB))[0] == 256 * MiB


def test_a_scenario_with_a_budget_of_its_own_is_judged_against_it():
    fast = _victim([1.0] * 10)
    assert misses({**_outcome(fast, rss=300.0), "budget_mib": 256}, Goals(), budget_mib=4096) == [
        ]
    assert misses({**_outcome(fast, rss=400.0), "budget_mib": 256}, Goals(), 4096) == ["RSS 400 > 356 MiB"]
    assert scenario_budget(next(s for s in SCENARIOS if s.key == "j-parked-frames"), FULL, 4096) == 256
    assert scenario_budget(SCENARIOS[0], FULL, 4096) == 4096


def test_table_marks_missed_goals():
    met = {**_outcome(_victim([1.0, 2.0])), "key": "baseline", "missed": []}
    missed = {**_outcome(_victim([400.0])), "key": "b-like-selector", "missed": ["max 400 > 250 ms"]}
    broken = {"key": "x", "error": "boom", "missed": ["did not run: boom"]}
    lines = table([met, missed, broken]).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith("| baseline") and lines[2].rstrip().endswith("| yes       |")
    assert "400.0" in lines[3] and "| NO" in lines[3] and "| NO" in lines[4]


def test_like_selector_fills_the_limit():
    selector = payloads.like_selector("fairpad")
    assert len(selector) == payloads.SELECTOR_LIMIT
    assert selector.startswith("fairpad LIKE '%aaa") and selector.endswith("ab'")
    assert len(payloads.long_header_value()) == 8000 and set(payloads.long_header_value()) == {"a"}
    with pytest.raises(ValueError):
        payloads.like_selector("fairpad", limit=10)


def test_deep_selectors_nest_as_labelled_and_fit_the_limit():
    assert payloads.nested_parens(3) == "(((fair = 1)))"
    assert payloads.not_chain(2) == "NOT NOT fair = 1"
    assert payloads.and_chain(3).count(" AND ") == 2
    pairs = payloads.deep_selectors()
    assert all(len(text) <= payloads.SELECTOR_LIMIT for _, text in pairs)
    for label, text in pairs:
        kind, _, depth = label.partition(" x")
        assert {"parens": text.count("("), "NOT": text.count("NOT "),
                "AND": text.count(" AND ") + 1}[kind] == int(depth)
    deepest = max(int(label.partition(" x")[2]) for label, _ in pairs if label.startswith("NOT"))
    assert deepest > 1000  # past Python's default recursion limit
    assert len(payloads.not_chain(payloads.longest_not_chain())) <= payloads.SELECTOR_LIMIT
    assert len(payloads.and_chain(payloads.longest_and_chain())) <= payloads.SELECTOR_LIMIT


def test_newline_bursts_and_transaction_plans_add_up():
    assert sum(payloads.newline_bursts(10_000_000, 65536)) == 10_000_000
    assert max(payloads.newline_bursts(10_000_000, 65536)) == 65536
    assert payloads.newline_bursts(0) == []
    assert payloads.transaction_plan(60_000_000, MiB) == [MiB] * 57 + [60_000_000 - 57 * MiB]
    with pytest.raises(ValueError):
        payloads.transaction_plan(10, 0)


def test_unfinished_send_is_one_byte_short():
    frame = payloads.unfinished_send("/queue/fair.parked", 1000)
    parser = StompParser()
    parser.feed(frame)
    assert parser.next_frame() is None
    parser.feed(b"x\0")
    complete = parser.next_frame()
    assert complete.command == "SEND" and len(complete.body) == 1000
    assert len(frame) - len(payloads.send_head("/queue/fair.parked", 1000)) == 999


def test_send_head_carries_extra_headers():
    parser = StompParser()
    parser.feed(payloads.send_head("/queue/q", 3, {"transaction": "tx1"}) + b"abc\0")
    frame = parser.next_frame()
    assert frame.headers["transaction"] == "tx1" and frame.body == b"abc"


def test_full_sizes_are_the_issue_figures_and_quick_is_smaller():
    assert FULL.flood_count == 500_000 and FULL.transactions == 20 and FULL.tx_bytes == 60_000_000
    assert FULL.parked == 100 and FULL.parked_bytes == 10_000_000 and FULL.eol_bytes == 10_000_000
    assert FULL.subscriptions == FULL.sockets == 999 and FULL.destinations == 10_000
    assert FULL.header_length == 8000 and FULL.duration == 10.0
    assert QUICK.flood_count < FULL.flood_count and QUICK.tx_bytes < FULL.tx_bytes
    assert QUICK.parked < FULL.parked and QUICK.duration < FULL.duration


def test_the_destination_limit_scenario_goes_one_past_the_limit_it_sets():
    from config.model import Limits

    past = next(s for s in SCENARIOS if s.key == "h2-past-destination-limit")
    assert past.params(QUICK) == {"destinations": 10_001, "limit": 10_000}
    assert past.broker_env(QUICK) == {"BATONMQ_LIMITS__MAX_DESTINATIONS": "10000"}
    default = Limits().max_destinations  # a full run meets the default limit itself
    assert past.params(FULL) == {"destinations": default + 1, "limit": default}
    assert past.broker_env(FULL) == {}


def test_every_scenario_names_a_known_load():
    known = loads()
    assert [s.key for s in SCENARIOS][0] == "baseline"
    assert len({s.key for s in SCENARIOS}) == len(SCENARIOS) == 12
    for scenario in SCENARIOS[1:]:
        assert scenario.load in known
        assert scenario.duration(QUICK) > 0 and isinstance(scenario.params(QUICK), dict)


def test_slow_collections_the_broker_logged_are_read_and_shown():
    lines = ["INFO batonmq.gc gc: a generation 2 collection held the broker 231 ms (68984 objects freed)",
             "keep-alive ok",
             "gc: a generation 1 collection held the broker 112 ms (0 objects freed)"]
    pauses = gc_pauses(lines)
    assert pauses == [(2, 231.0), (1, 112.0)]
    outcome = {**_outcome(_victim([1.0])), "missed": []}
    outcome["broker"]["gc_pauses"] = pauses
    assert "| 2 (231 ms)" in table([outcome]).splitlines()[2]
    outcome["broker"]["gc_pauses"] = []
    assert "| 0 " in table([outcome]).splitlines()[2]
