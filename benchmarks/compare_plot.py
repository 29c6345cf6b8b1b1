"""The comparison's bar chart: one bar per scenario and store (the ratio to ActiveMQ, > 1 = BatonMQ
ahead), a line at 1x and each scenario's goal. Needs matplotlib (the `bench` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def short_title(summary: dict[str, Any]) -> str:
    """A label that fits under a bar group, e.g. "receipted-16" or "latency-100 (p99)"."""
    return f"{summary['key']} (p99)" if summary["lower_is_better"] else summary["key"]


def plot(document: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    scenarios, stores = document["scenarios"], document["config"]["stores"]
    width = 0.8 / max(1, len(stores))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(scenarios)), 4.8))
    for i, store in enumerate(stores):
        xs = [n + (i - (len(stores) - 1) / 2) * width for n in range(len(scenarios))]
        heights = [s["ratios"][store] or 0.0 for s in scenarios]
        bars = ax.bar(xs, heights, width * 0.95, label=document["labels"][store], color=f"C{i}")
        for bar, s in zip(bars, scenarios, strict=True):
            value = s["ratios"][store]
            ax.annotate("n/a" if value is None else f"{value:.2f}", (bar.get_x() + bar.get_width() / 2,
                        bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=1.0, label="1x (level with ActiveMQ)")
    for n, s in enumerate(scenarios):
        ax.hlines(s["goal_ratio"], n - 0.45, n + 0.45, colors="red", linestyles="dashed",
                  label="goal" if n == 0 else "_nolegend_")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([short_title(s) for s in scenarios], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("BatonMQ / ActiveMQ (latency: ActiveMQ / BatonMQ)")
    config, machine = document["config"], document["machine"]
    ax.set_title(f"BatonMQ vs {document['labels']['activemq']}: medians of {config['rounds']} rounds"
                 f"{' (quick)' if config.get('quick') else ''}, {machine.get('cores')} cores, "
                 f"{str(machine.get('when', ''))[:10]}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
