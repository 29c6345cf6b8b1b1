"""`make bench-compare`: the e2e scenarios against BatonMQ (each store) and ActiveMQ, alternating in one run.

    python -m benchmarks.compare [--rounds 3] [--quick] [--stores journal,leveldb,appendlog]
        [--json FILE] [--plot FILE] [--activemq-home DIR] [--only SCENARIO] [--check]

Each round starts every broker afresh (temporary store, free loopback port), warms it up with a short
bounded load, runs the selected scenarios on it and stops it by PID; the client's ceiling (the sink)
is one more target in the rotation. The order of the targets rotates from round to round, so that
machine noise falls on all of them. ActiveMQ comes from Debian's `activemq` package, installed here
when it is missing and the machine allows; when it cannot be had, this says why and exits 0.
Prints medians per scenario and target and the BatonMQ/ActiveMQ ratios against the goals of issue 15.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks import e2e
from benchmarks.activemq import activemq_broker, ensure_available
from benchmarks.activemq_config import DEBIAN_HOME, Limits
from benchmarks.compare_plot import matplotlib_available, plot
from benchmarks.compare_report import ACTIVEMQ, CEILING, GOALS, build_document, render_text
from benchmarks.e2e import SCENARIOS, Scenario, Sizes, Target
from benchmarks.loadgen import Job, run_jobs
from benchmarks.report import machine_info, machine_line, progress, write_json

RESULTS = Path("benchmarks/results")
# Messages sent (a tenth more with a receipt each) and consumed on every broker before it is measured.
WARMUP = {"quick": 10_000, "full": 30_000}
WARMUP_LIMIT = 20.0  # seconds, for each of its three phases

Pick = Callable[[Scenario], Target]  # the target a scenario runs against (the ceiling has two sinks)


def rotation(targets: list[str], round_number: int) -> list[str]:
    """Round 1 runs the targets in the given order, round 2 starts one later, and so on."""
    shift = (round_number - 1) % len(targets)
    return targets[shift:] + targets[:shift]


@contextlib.contextmanager
def open_target(key: str, home: Path) -> Iterator[tuple[Target | None, Pick]]:
    """(the broker, or None for the ceiling; which target each scenario runs against)."""
    if key == ACTIVEMQ:
        with activemq_broker(home, Limits()) as target:
            yield target, lambda _: target
    elif key == CEILING:
        with e2e.sink(flood=False) as echo, e2e.sink(flood=True) as flood:
            yield None, lambda scenario: e2e.ceiling_target(scenario, echo, flood)
    else:
        with e2e.own_broker(key) as target:
            yield target, lambda _: target


def warm_up(target: Target, count: int) -> None:
    """The same short load on every broker before it is measured, so that a JVM is measured after its
    JIT compiled the paths: receipted sends, pipelined sends, then consuming all of them."""
    common = Job(role="produce", host=target.host, port=target.port, count=count, time_limit=WARMUP_LIMIT,
                 destination=e2e.destination("queue", "warmup"), login=target.login, passcode=target.passcode)
    receipted = replace(common, count=max(1, count // 10), window=1)
    consume = replace(common, role="consume", count=count + receipted.count, ack="client-individual")
    for job in (receipted, replace(common, window=50), consume):
        summary = run_jobs([job])[job.role]
        if summary.errors:
            progress(f"warm-up on {target.label}: {summary.errors[:2]}")


def run_target(key: str, round_number: int, selected: list[Scenario], sizes: Sizes, home: Path,
               warmup: int) -> tuple[str | None, list[dict[str, Any]]]:
    """One target's turn in a round: its label and one record per scenario."""
    runs: list[dict[str, Any]] = []
    label: str | None = None
    try:
        with open_target(key, home) as (broker, pick):
            if broker is not None:
                label = broker.label
                if warmup:
                    warm_up(broker, warmup)
            for scenario in selected:
                result = e2e.run_one(scenario, pick(scenario), sizes)
                runs.append({"round": round_number, "target": key, "scenario": scenario.key,
                             "result": result})
    except Exception as error:  # a broker that would not start: its rows say so, the others go on
        progress(f"round {round_number}: {key} failed: {error}")
        done = {run["scenario"] for run in runs}
        runs += [{"round": round_number, "target": key, "scenario": s.key, "result": {"error": str(error)}}
                 for s in selected if s.key not in done]
    return label, runs


def default_labels(stores: list[str]) -> dict[str, str]:
    return {**{s: f"BatonMQ {s}" for s in stores}, ACTIVEMQ: "ActiveMQ", CEILING: "client ceiling (sink)"}


def sizes_of(args: argparse.Namespace) -> Sizes:
    return e2e.QUICK if args.quick else e2e.FULL


def warmup_of(args: argparse.Namespace) -> int:
    return 0 if args.no_warmup else WARMUP["quick" if args.quick else "full"]


def run_rounds(args: argparse.Namespace, selected: list[Scenario]) -> tuple[list[dict[str, Any]],
                                                                            dict[str, str]]:
    labels = default_labels(args.stores)
    runs: list[dict[str, Any]] = []
    for round_number in range(1, args.rounds + 1):
        for key in rotation([*args.stores, ACTIVEMQ, CEILING], round_number):
            progress(f"round {round_number}/{args.rounds}: {key}")
            label, mine = run_target(key, round_number, selected, sizes_of(args), args.activemq_home,
                                     warmup_of(args))
            if label is not None and key == ACTIVEMQ:
                labels[key] = label
            runs += mine
    return runs, labels


def parse_stores(text: str) -> list[str]:
    stores = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stores if s not in e2e.STORES]
    if unknown or not stores:
        raise argparse.ArgumentTypeError(f"stores are among {', '.join(e2e.STORES)}; got {text!r}")
    return list(dict.fromkeys(stores))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="the e2e suite's small counts and short limits")
    parser.add_argument("--stores", type=parse_stores, default=list(e2e.STORES),
                        help="comma-separated BatonMQ stores (default: all three)")
    parser.add_argument("--json", type=Path, default=RESULTS / "compare.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "compare.png")
    parser.add_argument("--activemq-home", type=Path, default=DEBIAN_HOME,
                        help="an ActiveMQ installation (bin/activemq.jar); only the default is installed")
    parser.add_argument("--only", action="append", choices=[s.key for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--no-warmup", action="store_true", help="measure each broker cold")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be within 1..20")
    return args


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so that every broker started here is stopped by its PID."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    unavailable = ensure_available(args.activemq_home)
    if unavailable is not None:
        print(f"bench-compare: ActiveMQ is not available ({unavailable}); nothing compared.")
        return 0
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return compare(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def compare(args: argparse.Namespace) -> int:
    selected = [s for s in SCENARIOS if (not args.only or s.key in args.only) and s.key in GOALS]
    machine = machine_info()
    progress(machine_line(machine))
    began = time.monotonic()
    runs, labels = run_rounds(args, selected)
    config = {"quick": args.quick, "sizes": asdict(sizes_of(args)), "warmup_messages": warmup_of(args),
              "activemq_home": str(args.activemq_home), "activemq_limits": asdict(Limits()),
              "client": "benchmarks.loadgen", "seconds": round(time.monotonic() - began, 1)}
    document = build_document(runs, [s.key for s in selected], args.stores, args.rounds, labels, machine,
                              config)
    report(document, args)
    failed = any("error" in run["result"] for run in runs if run["target"] != CEILING)
    missed = args.check and document["goals"]["met"] < document["goals"]["total"]
    return 1 if failed or missed else 0


def report(document: dict[str, Any], args: argparse.Namespace) -> None:
    print(machine_line(document["machine"]))
    print(f"{args.rounds} alternating rounds, {'quick' if args.quick else 'full'} sizes, "
          f"{document['config']['seconds']} s; client: benchmarks.loadgen")
    print(render_text(document))
    write_json(args.json, document)
    progress(f"JSON: {args.json}")
    if matplotlib_available():
        plot(document, str(args.plot))
        progress(f"chart: {args.plot}")
    else:
        progress("matplotlib is not installed (the bench extra): no chart")


if __name__ == "__main__":
    sys.exit(main())
