"""The failover benchmark's arithmetic, free of processes and sockets: phases per round, percentiles,
the delivery check (Jepsen's total-queue rule, design section 7), the JSON document, text and plot."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.report import format_number, render_table, summarize

PHASES = ("lock_taken", "store_recovered", "connector_bound", "first_receipt", "first_message")


@dataclass
class RoundResult:
    round: int
    killed: str
    signal: str
    kill_time: float  # wall clock; every phase below is in ms after it
    new_master: str | None = None
    epoch: int | None = None
    lock_taken: float | None = None
    store_recovered: float | None = None
    connector_bound: float | None = None
    first_receipt: float | None = None
    first_message: float | None = None
    timed_out: bool = False

    def complete(self) -> bool:
        return all(getattr(self, phase) is not None for phase in PHASES)


def since_kill(kill_time: float, at: float | None) -> float | None:
    """Milliseconds from the kill to `at` (None stays None)."""
    return None if at is None else round((at - kill_time) * 1000.0, 3)


@dataclass(frozen=True)
class DeliveryCheck:
    receipted: int
    consumed: int  # distinct sequence numbers
    lost: list[int]  # receipted, never consumed
    duplicates: int  # deliveries beyond the first of a sequence number
    duplicates_redelivered: int  # of those, flagged `redelivered:true` (allowed)
    unexpected: list[int]  # consumed but never sent: must never happen


def check_delivery(
    receipted: Iterable[int], deliveries: Iterable[tuple[int, bool]], sent: int
) -> DeliveryCheck:
    """`deliveries` = (seq, redelivered flag) in arrival order; `sent` = seqs below it were written."""
    receipted_set = set(receipted)
    counts: Counter[int] = Counter()
    flagged = 0
    for seq, redelivered in deliveries:
        counts[seq] += 1
        if counts[seq] > 1 and redelivered:
            flagged += 1
    duplicates = sum(n - 1 for n in counts.values())
    return DeliveryCheck(
        receipted=len(receipted_set),
        consumed=len(counts),
        lost=sorted(receipted_set - counts.keys()),
        duplicates=duplicates,
        duplicates_redelivered=flagged,
        unexpected=sorted(seq for seq in counts if seq >= sent or seq < 0),
    )


def build_document(
    rounds: list[RoundResult], check: DeliveryCheck, machine: dict[str, object], config: dict[str, object]
) -> dict[str, object]:
    """The JSON shape the README and `batonmq bench failover` promise (keys and order fixed)."""
    summary = {phase: summarize(getattr(r, phase) for r in rounds) for phase in PHASES}
    return {
        "summary": summary,
        "lost": len(check.lost),
        "duplicates": check.duplicates,
        "rounds": [asdict(r) for r in rounds],
        "machine": machine,
        "config": {**config, "delivery": {
            "receipted": check.receipted, "consumed": check.consumed,
            "duplicates_redelivered": check.duplicates_redelivered,
            "unexpected": len(check.unexpected), "lost_sample": check.lost[:20],
        }},
    }


def render_text(document: dict[str, object]) -> str:
    summary = document["summary"]
    assert isinstance(summary, dict)
    rows = [[phase, *(format_number(summary[phase][k], 1) for k in ("p50", "p90", "p99", "max"))]
            for phase in PHASES]
    lines = [render_table(["ms after the kill", "p50", "p90", "p99", "max"], rows), ""]
    rounds = document["rounds"]
    assert isinstance(rounds, list)
    round_rows = [[str(r["round"]), r["killed"], str(r["new_master"]),
                   *(format_number(r[phase], 1) for phase in PHASES), "TIMEOUT" if r["timed_out"] else ""]
                  for r in rounds]
    lines += [render_table(["round", "killed", "new master", *PHASES, ""], round_rows), ""]
    config = document["config"]
    assert isinstance(config, dict)
    delivery = config["delivery"]
    lines.append(f"receipted {delivery['receipted']}, consumed {delivery['consumed']} distinct; "
                 f"lost {document['lost']}, duplicates {document['duplicates']} "
                 f"({delivery['duplicates_redelivered']} flagged redelivered), "
                 f"never-sent seen {delivery['unexpected']}")
    return "\n".join(lines)


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot(document: dict[str, object], path: str) -> None:
    """One row per round: a bar from the kill to the first consumed message, a marker per phase."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    rounds = document["rounds"]
    assert isinstance(rounds, list)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.3 * len(rounds)))
    markers = dict(zip(PHASES, ("o", "s", "^", "D", "*"), strict=True))
    labelled: set[str] = set()
    for r in rounds:
        ends = [r[p] for p in PHASES if r[p] is not None]
        if ends:
            ax.barh(r["round"], max(ends), color="#dddddd", height=0.6)
        for i, phase in enumerate(PHASES):
            if r[phase] is not None:
                ax.plot(r[phase], r["round"], markers[phase], color=f"C{i}",
                        label=None if phase in labelled else phase)
                labelled.add(phase)
    ax.set_xlabel("ms after the kill of the master")
    ax.set_ylabel("round")
    ax.set_yticks([r["round"] for r in rounds])  # rounds are whole numbers
    ax.invert_yaxis()
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # outside: never hides a round
    config = document["config"]
    assert isinstance(config, dict)
    ax.set_title(f"BatonMQ failover: {config.get('store')} store, {config.get('brokers')} brokers, "
                 f"SIG{config.get('signal')}, lost {document['lost']}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
