"""The BatonMQ/ActiveMQ comparison's arithmetic, free of processes: samples, medians, ratios, the goals
of issue 15 (point 3), the JSON document and the text tables.

A ratio is the BatonMQ median over the ActiveMQ median, so that > 1 means BatonMQ is ahead; for the
latency scenario, where lower is better, it is ActiveMQ's p99 over BatonMQ's, for the same reading.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.e2e import SCENARIOS, Scenario
from benchmarks.report import format_number, render_table

ACTIVEMQ = "activemq"
CEILING = "ceiling"
NEAR_CEILING = 0.7  # a broker above this share of the client's ceiling may be measuring the client


@dataclass(frozen=True)
class Goal:
    metric: str  # a RoleSummary field of the scenario's role: "rate" or "latency_p99"
    ratio: float  # at least this ratio (see the module docstring for its direction)

    @property
    def lower_is_better(self) -> bool:
        return self.metric.startswith("latency")

    def describe(self) -> str:
        if self.lower_is_better:
            return "p99 <= ActiveMQ's" if self.ratio == 1.0 else f">= {self.ratio:g}x (ActiveMQ p99 / ours)"
        return f">= {self.ratio:g}x"


GOALS: dict[str, Goal] = {
    "receipted-1": Goal("rate", 2.0),
    "receipted-4": Goal("rate", 2.0),
    "receipted-16": Goal("rate", 2.0),
    "async-1": Goal("rate", 2.0),
    "consume-auto": Goal("rate", 2.0),
    "consume-client-individual": Goal("rate", 2.0),
    "fanout-10": Goal("rate", 1.5),
    "latency-100": Goal("latency_p99", 1.0),
}


def scenario(key: str) -> Scenario:
    return next(s for s in SCENARIOS if s.key == key)


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def sample(result: dict[str, Any], role: str, metric: str) -> float | None:
    """The figure one scenario run gave (an e2e.run_one result); None if it failed in any way."""
    if "error" in result:
        return None
    shown = result.get(role)
    if not isinstance(shown, dict) or shown.get("errors") or not shown.get("count"):
        return None
    value = shown.get(metric)
    return float(value) if isinstance(value, int | float) else None


def ratio(ours: float | None, theirs: float | None, lower_is_better: bool = False) -> float | None:
    """ours/theirs (higher is better) or theirs/ours (lower is better); None without both figures."""
    if ours is None or theirs is None:
        return None
    numerator, denominator = (theirs, ours) if lower_is_better else (ours, theirs)
    return numerator / denominator if denominator > 0 else None


def goal_met(value: float | None, goal: Goal) -> bool | None:
    return None if value is None else value >= goal.ratio


def _per_round(runs: list[dict[str, Any]], key: str, target: str, rounds: int) -> list[float | None]:
    role, metric = scenario(key).role, GOALS[key].metric
    found: list[float | None] = [None] * rounds
    for run in runs:
        if run["scenario"] == key and run["target"] == target and 1 <= run["round"] <= rounds:
            found[run["round"] - 1] = sample(run["result"], role, metric)
    return found


def scenario_summary(runs: list[dict[str, Any]], key: str, stores: Sequence[str],
                     rounds: int) -> dict[str, Any]:
    goal = GOALS[key]
    targets = [*stores, ACTIVEMQ, CEILING]
    samples = {t: _per_round(runs, key, t, rounds) for t in targets}
    medians = {t: median(samples[t]) for t in targets}
    ratios = {s: ratio(medians[s], medians[ACTIVEMQ], goal.lower_is_better) for s in stores}
    round_ratios = {s: [ratio(ours, theirs, goal.lower_is_better)
                        for ours, theirs in zip(samples[s], samples[ACTIVEMQ], strict=True)] for s in stores}
    return {
        "key": key, "title": scenario(key).title, "metric": goal.metric,
        "lower_is_better": goal.lower_is_better, "goal_ratio": goal.ratio, "goal": goal.describe(),
        "samples": samples, "medians": medians, "ratios": ratios, "round_ratios": round_ratios,
        "goal_met": {s: goal_met(ratios[s], goal) for s in stores},
    }


def build_document(runs: list[dict[str, Any]], keys: Sequence[str], stores: Sequence[str], rounds: int,
                   labels: dict[str, str], machine: dict[str, object],
                   config: dict[str, object]) -> dict[str, Any]:
    summaries = [scenario_summary(runs, key, stores, rounds) for key in keys]
    verdicts = [met for s in summaries for met in s["goal_met"].values()]
    return {
        "machine": machine, "config": {**config, "stores": list(stores), "rounds": rounds},
        "labels": labels, "scenarios": summaries,
        "goals": {"met": verdicts.count(True), "missed": verdicts.count(False),
                  "no_data": verdicts.count(None), "total": len(verdicts)},
        "runs": runs,
    }


def _value_cell(values: list[float | None], value: float | None, metric: str) -> str:
    text = format_number(value, 2 if metric.startswith("latency") else 0)
    present = sum(v is not None for v in values)
    return text if present == len(values) or value is None else f"{text} ({present}/{len(values)})"


def _ratio_cell(value: float | None, per_round: list[float | None], met: bool | None) -> str:
    if value is None:
        return "no data"
    present = [r for r in per_round if r is not None]
    spread = f" ({min(present):.2f}-{max(present):.2f})" if len(present) > 1 else ""
    return f"{value:.2f}x{spread} {'met' if met else 'MISSED'}"


def medians_table(document: dict[str, Any]) -> str:
    labels, stores = document["labels"], document["config"]["stores"]
    targets = [*stores, ACTIVEMQ, CEILING]
    rows = [[s["title"], "p99 ms" if s["lower_is_better"] else "msg/s",
             *(_value_cell(s["samples"][t], s["medians"][t], s["metric"]) for t in targets)]
            for s in document["scenarios"]]
    return render_table(["scenario (1 KiB)", "median of", *(labels[t] for t in targets)], rows)


def ratios_table(document: dict[str, Any]) -> str:
    labels, stores = document["labels"], document["config"]["stores"]
    rows = [[s["title"], "ActiveMQ p99 / BatonMQ p99" if s["lower_is_better"] else "BatonMQ / ActiveMQ",
             s["goal"],
             *(_ratio_cell(s["ratios"][t], s["round_ratios"][t], s["goal_met"][t]) for t in stores)]
            for s in document["scenarios"]]
    return render_table(["scenario", "ratio (> 1: BatonMQ ahead)", "goal",
                         *(f"{labels[t]} (rounds min-max)" for t in stores)], rows)


def near_ceiling(document: dict[str, Any]) -> list[str]:
    """Scenarios where a broker came within NEAR_CEILING of the client's own ceiling."""
    found = []
    for s in document["scenarios"]:
        top = s["medians"][CEILING]
        if s["lower_is_better"] or not top:
            continue
        close = [document["labels"][t] for t, v in s["medians"].items()
                 if t != CEILING and v is not None and v >= NEAR_CEILING * top]
        if close:
            found.append(f"{s['key']}: {', '.join(close)}")
    return found


def render_text(document: dict[str, Any]) -> str:
    goals = document["goals"]
    lines = [medians_table(document), "", ratios_table(document), "",
             f"goals of issue 15 met: {goals['met']} of {goals['total']} (scenario x store); "
             f"missed {goals['missed']}, no data {goals['no_data']}"]
    close = near_ceiling(document)
    if close:
        lines.append(f"within {NEAR_CEILING:.0%} of the client's ceiling (the client may be the limit): "
                     + "; ".join(close))
    return "\n".join(lines)
