"""`make bench`: the store micro-benchmarks (if present), then the end-to-end suite.

    python -m benchmarks.run [--quick] [--store journal] [--json-dir DIR]

The failover benchmark is separate (`make bench-failover`): it takes minutes and kills processes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import e2e
from benchmarks.report import progress


def run_stores(quick: bool, json_dir: Path | None) -> int | None:
    """benchmarks.stores is written separately; skip it, saying so, when it is not there."""
    if importlib.util.find_spec("benchmarks.stores") is None:
        progress("benchmarks.stores is not available: skipping the store benchmarks")
        return None
    stores = importlib.import_module("benchmarks.stores")
    argv = ["--quick"] if quick else []
    if json_dir is not None:
        argv += ["--json", str(json_dir / "stores.json")]
    progress(f"store benchmarks: python -m benchmarks.stores {' '.join(argv)}")
    main: Callable[[list[str]], int] = stores.main  # imported by name, so typed here
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs of everything")
    parser.add_argument("--store", default="journal", help="the store of the broker in the e2e suite")
    parser.add_argument("--json-dir", type=Path, help="write stores.json and e2e.json here")
    args = parser.parse_args(argv)
    if args.json_dir is not None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
    codes = [run_stores(args.quick, args.json_dir)]
    e2e_argv = ["--store", args.store, *(["--quick"] if args.quick else [])]
    if args.json_dir is not None:
        e2e_argv += ["--json", str(args.json_dir / "e2e.json")]
    progress(f"end-to-end suite: python -m benchmarks.e2e {' '.join(e2e_argv)}")
    codes.append(e2e.main(e2e_argv))
    return max((code for code in codes if code is not None), default=0)


if __name__ == "__main__":
    sys.exit(main())
