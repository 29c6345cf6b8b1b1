"""Broker CPU per persistent SEND or delivery: the hot-path measurement behind the performance work.

Throughput on a shared VM is dominated by fsync noise; the broker's own CPU time per message
(user + sys from /proc/<pid>/stat, read before and after a fixed run) is much steadier, so this
prints both. 1 KiB persistent messages, the journal store unless --store says otherwise, a fresh
broker per round:

- `receipt-1`: 1 producer, each SEND waits for its RECEIPT;
- `receipt-16`: 16 producers (2 client processes), receipted;
- `pipelined`: 1 producer, no receipts but a final one;
- `fanout-10`: 1 producer of non-persistent messages to a topic (a receipt every 100) and 10
  subscribers (2 client processes): CPU per *delivery*, the MESSAGE path (dispatch, encode, write);
- `consume-ci`: a queue filled beforehand (pipelined, not measured), then drained by 1 consumer
  acking each message (`client-individual`): the MESSAGE -> ACK -> store removal path.

    python -m benchmarks.hotpath --rounds 3 --count 5000

Each case sends to its own queue so that the broker's memory and queue sizes are the same for every
order of cases. Linux only (/proc). Bounded: every run has a count and a time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.brokers import BrokerProcess, free_port
from benchmarks.loadgen import Job, RoleSummary, run_jobs, spread

CASES = {  # name: (producers, client processes, window, messages as a multiple of --count)
    "receipt-1": (1, 1, 1, 1),
    "receipt-16": (16, 2, 1, 2),
    "pipelined": (1, 1, 0, 4),  # fast: more messages so that start-up noise does not dominate
    "fanout-10": (1, 1, 100, 1),  # the producer's; the subscribers are FANOUT_SUBSCRIBERS
    "consume-ci": (1, 1, 0, 2),  # the consumer's; the queue is filled by one pipelined producer first
}
FANOUT_SUBSCRIBERS = 10
HOST = "127.0.0.1"
TIME_LIMIT = 60.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" of comm: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run_case(broker: BrokerProcess, case: str, count: int, size: int) -> dict[str, float]:
    producers, processes, window, _ = CASES[case]
    fanout = case.startswith("fanout")
    if case.startswith("consume"):
        return run_consume(broker, case, count, size)
    job = Job(role="produce", host=HOST, port=broker.port,
              destination=f"/{'topic' if fanout else 'queue'}/hotpath.{case}",
              count=count, size=size, window=window, persistent=not fanout, time_limit=TIME_LIMIT)
    jobs = spread(job, producers, processes)
    if fanout:
        consumer = replace(job, role="consume", subscribe_early=True)
        jobs = [*spread(consumer, FANOUT_SUBSCRIBERS, 2), *jobs]
    assert broker.pid is not None
    user0, sys0 = cpu_seconds(broker.pid)
    summaries = run_jobs(jobs)
    user1, sys1 = cpu_seconds(broker.pid)
    summary = _checked(case, summaries)["consume" if fanout else "produce"]  # per delivery for a fan-out
    return per_message(summary, user1 - user0, sys1 - sys0)


def run_consume(broker: BrokerProcess, case: str, count: int, size: int) -> dict[str, float]:
    """Fill the case's queue (not measured), then measure its drain by one acking consumer."""
    fill = Job(role="produce", host=HOST, port=broker.port, destination=f"/queue/hotpath.{case}",
               count=count, size=size, window=0, persistent=True, time_limit=TIME_LIMIT)
    _checked(case, run_jobs([fill]))
    assert broker.pid is not None
    user0, sys0 = cpu_seconds(broker.pid)
    summaries = _checked(case, run_jobs([replace(fill, role="consume", ack="client-individual")]))
    user1, sys1 = cpu_seconds(broker.pid)
    return per_message(summaries["consume"], user1 - user0, sys1 - sys0)


def _checked(case: str, summaries: dict[str, RoleSummary]) -> dict[str, RoleSummary]:
    errors = [error for role in summaries.values() for error in role.errors]
    if errors:
        raise RuntimeError(f"{case}: {errors[:3]}")
    return summaries


def per_message(summary: RoleSummary, user: float, system: float) -> dict[str, float]:
    per_msg = 1000 / max(1, summary.count)
    return {"messages": summary.count, "rate": summary.rate,
            "cpu_ms_per_msg": round(per_msg * (user + system), 4),
            "user_ms_per_msg": round(per_msg * user, 4),
            "sys_ms_per_msg": round(per_msg * system, 4)}


def run(rounds: int, count: int, size: int, cases: list[str],
        store: str = "journal") -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
    for n in range(rounds):
        with tempfile.TemporaryDirectory(prefix="hotpath-") as data:
            broker = BrokerProcess(f"hotpath{n}", HOST, free_port((HOST,)), Path(data), store=store).start()
            try:
                if not broker.wait_accepting(30):
                    raise RuntimeError(f"broker did not start:\n{broker.tail()}")
                for case in cases:
                    producers, _, _, scale = CASES[case]
                    per_connection = max(1, count * scale // producers)
                    results[case].append(run_case(broker, case, per_connection, size))
            finally:
                broker.stop()
    return results


def table(results: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| case | runs | msg/s (median) | CPU ms/msg (median) | user / sys (median) "
             "| CPU ms/msg (all) |",
             "|---|---|---|---|---|---|"]
    for case, runs in results.items():
        rates = [r["rate"] for r in runs]
        cpus = [r["cpu_ms_per_msg"] for r in runs]
        user = statistics.median(r["user_ms_per_msg"] for r in runs)
        system = statistics.median(r["sys_ms_per_msg"] for r in runs)
        lines.append(f"| {case} | {len(runs)} | {statistics.median(rates):,.0f} | "
                     f"{statistics.median(cpus):.4f} | {user:.4f} / {system:.4f} | "
                     f"{', '.join(f'{c:.4f}' for c in cpus)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh brokers, each running every case")
    parser.add_argument("--count", type=int, default=5000,
                        help="messages per case, times its multiple, split over its producers")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--store", default="journal", help="the broker's --store (journal, appendlog, ...)")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args(argv)
    results = run(max(1, args.rounds), max(1, args.count), args.size, args.cases, args.store)
    print(table(results))
    document = json.dumps(results, indent=2)
    print(document)
    if args.json:
        Path(args.json).write_text(document, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
