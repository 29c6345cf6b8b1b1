"""`batonmq fscheck DIR`: check that DIR's file system gives master/slave the locking it needs.

The checks are in stores.fscheck; this is the glue: validate the arguments (a bad DIR is exit 2
with one line), run, print text or JSON, return 0 when every check that ran passed, else 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from broker.ha.roles import ExitCode

MAX_WAIT = 3600.0  # seconds: --wait-for-peer and --release-bound

log = logging.getLogger("batonmq.fscheck")


def _usage(message: str) -> int:
    print(f"batonmq: fscheck: {message}", file=sys.stderr)
    return ExitCode.USAGE


def _problem(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot run, in one line; None when they can."""
    directory = Path(args.dir)
    if not directory.exists():
        return f"no such directory: {directory}"
    if not directory.is_dir():
        return f"not a directory: {directory}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot write in {directory}: permission denied"
    for flag, value in (("--release-bound", args.release_bound), ("--wait-for-peer", args.wait_for_peer)):
        if value > MAX_WAIT:
            return f"{flag} must be at most {MAX_WAIT:.0f} s"
    if args.release_bound <= 0:
        return "--release-bound must be greater than 0"
    return None


def main(args: argparse.Namespace) -> int:
    from stores.fscheck import report
    from stores.fscheck.checks import Options, run_all, scratch_root

    if problem := _problem(args):
        return _usage(problem)
    directory = Path(args.dir).resolve()
    try:
        scratch_root(directory).mkdir(exist_ok=True)
    except OSError as exc:
        return _usage(f"cannot write in {directory}: {exc.strerror or exc}")
    options = Options(
        peer=args.peer,
        wait_for_peer=args.wait_for_peer,
        release_bound=args.release_bound,
        linger=args.simulate_stuck_holder,
    )
    if options.peer:
        log.info("waiting up to %g s for the peer instance in %s", options.wait_for_peer, directory)
    results = run_all(directory, options)
    print(report.as_json(directory, results) if args.json else report.text(directory, results), flush=True)
    return ExitCode.OK if report.passed(results) else ExitCode.FAILED
