"""Shared reporting pieces for the benchmarks: percentiles, machine description, tables, JSON, progress."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default).

    None for no values: an empty phase is reported as missing, never as zero.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Iterable[float | None]) -> dict[str, float | None]:
    """p50/p90/p99/max of the values that are present (None entries are skipped)."""
    present = [v for v in values if v is not None]
    summary: dict[str, float | None] = {name: _round(percentile(present, q)) for name, q in QUANTILES}
    summary["max"] = _round(max(present)) if present else None
    return summary


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def machine_info() -> dict[str, object]:
    """What the figures were measured on: they only compare side by side on one machine."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "hostname": platform.node(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_line(info: dict[str, object]) -> str:
    load = info.get("loadavg")
    load_text = f", load {' '.join(map(str, load))}" if isinstance(load, list) else ""
    return (f"machine: {info['platform']}, {info['cores']} cores ({info.get('cpu') or 'unknown cpu'}), "
            f"Python {info['python']}{load_text}")


def format_number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too), columns padded to their widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def write_json(path: str | Path, document: object) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def progress(message: str) -> None:
    """Progress goes to stderr so stdout carries only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
