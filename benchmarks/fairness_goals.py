"""The fairness benchmark's figures and verdicts (issue 11, point 7), as pure functions.

A scenario's outcome is a plain dict (it goes to JSON as it is):
    victim:  the well-behaved client's receipt latencies summarised, counts and errors
    broker:  its peak RSS in MiB, its exit code if it exited, whether it lost the lock
    hostile: what the hostile load did, and its checks (e.g. "new client admitted": True)
    error:   set when the scenario itself could not run
`misses()` lists every goal the outcome missed; an empty list means the goal was met.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import format_number, render_table, summarize
from broker.ha.roles import ExitCode, Role

MiB = 1024 * 1024
# What the broker logs for a collection of broker.daemon.gcpauses.SLOW_PAUSE or more.
_GC_PAUSE = re.compile(r"gc: a generation (\d) collection held the broker (\d+) ms")
LOCK_LOSS_CODES = (ExitCode.LOCK_LOST, ExitCode.LOCK_TIMEOUT)


@dataclass(frozen=True)
class Goals:
    p99_ms: float = 50.0
    max_ms: float = 250.0
    rss_headroom_mib: float = 100.0  # over the configured memory budget


def victim_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The victim's figures from a VictimResult (as a dict): receipt p50/p90/p99/max and counts."""
    summary: dict[str, Any] = summarize(result["latencies"])
    summary.update(sent=result["sent"], receipted=result["receipted"], missing=result["missing"],
                   errors=result["error_count"], received=result["received"],
                   delivery_p99=summarize(result["delivery"])["p99"], error_lines=list(result["errors"]))
    return summary


def lock_lost(roles: Sequence[str], exit_code: int | None) -> bool:
    """A role line into lock_lost, or an exit code that only a lock loss (or lock timeout) gives."""
    return Role.LOCK_LOST.value in roles or exit_code in LOCK_LOSS_CODES


def peak_rss_mib(samples_kib: Sequence[int], high_water_kib: int | None) -> float | None:
    """The highest RSS seen: the sampled values and the kernel's own high-water mark (VmHWM)."""
    values = [*samples_kib, *([high_water_kib] if high_water_kib is not None else [])]
    return round(max(values) / 1024, 1) if values else None


def default_budget(limits: Any) -> tuple[int, str]:
    """The broker's memory budget (bytes) with default settings on this machine, and its source."""
    return int(limits.budget), "limits.memory_budget (default: 20% of RAM, 64 MiB to 4 GiB)"


def misses(outcome: Mapping[str, Any], goals: Goals, budget_mib: float) -> list[str]:
    """Every goal the scenario missed, in words; [] = goal met."""
    if outcome.get("error"):
        return [f"did not run: {outcome['error']}"]
    victim, broker = outcome["victim"], outcome["broker"]
    found: list[str] = []
    if not victim["receipted"]:
        found.append("no receipts")
    for key, limit in (("p99", goals.p99_ms), ("max", goals.max_ms)):
        if victim[key] is not None and victim[key] > limit:
            found.append(f"{key} {victim[key]:,.0f} > {limit:g} ms")
    if victim["missing"]:
        found.append(f"{victim['missing']} receipts missing")
    if victim["errors"]:
        found.append(f"{victim['errors']} victim errors")
    budget_mib = outcome.get("budget_mib", budget_mib)  # a scenario may run with a budget of its own
    rss, ceiling = broker.get("rss_max_mib"), budget_mib + goals.rss_headroom_mib
    if rss is not None and rss > ceiling:
        found.append(f"RSS {rss:,.0f} > {ceiling:,.0f} MiB")
    if broker.get("lock_lost"):
        found.append("lock lost")
    if broker.get("exit_code") is not None:
        found.append(f"broker exited (code {broker['exit_code']})")
    for check, passed in outcome.get("hostile", {}).get("checks", {}).items():
        if not passed:
            found.append(f"{check}: no")
    return found


HEADERS = ["scenario", "victim p50 ms", "p99 ms", "max ms", "receipts", "errors", "broker max RSS MiB",
           "budget MiB", "GC pauses >= 100 ms (longest)", "lock lost?", "goal met?"]


def gc_pauses(lines: Iterable[str]) -> list[tuple[int, float]]:
    """(generation, ms) of each slow collection the broker logged."""
    return [(int(m.group(1)), float(m.group(2))) for line in lines if (m := _GC_PAUSE.search(line))]


def _pauses_cell(pauses: Sequence[Sequence[float]] | None) -> str:
    if pauses is None:
        return "-"
    if not pauses:
        return "0"
    return f"{len(pauses)} ({max(ms for _, ms in pauses):,.0f} ms)"


def table(outcomes: Sequence[Mapping[str, Any]]) -> str:
    """One row per scenario; what each missed goal was follows the table."""
    rows = []
    for outcome in outcomes:
        victim = outcome.get("victim") or {}
        broker = outcome.get("broker") or {}
        missed = outcome.get("missed", [])
        receipts = (f"{victim['receipted']}/{victim['sent']}" if victim else "-")
        rows.append([
            outcome["key"],
            *(format_number(victim.get(k), 1) for k in ("p50", "p99", "max")),
            receipts,
            str(victim.get("errors", "-")) if victim else "-",
            format_number(broker.get("rss_max_mib")),
            format_number(outcome.get("budget_mib")),
            _pauses_cell(broker.get("gc_pauses")),
            "yes" if broker.get("lock_lost") else "no",
            "yes" if not missed else "NO",
        ])
    return render_table(HEADERS, rows)


def missed_lines(outcomes: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"- {o['key']}: {'; '.join(o['missed'])}" for o in outcomes if o.get("missed")]
