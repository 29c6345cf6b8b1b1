"""Run a documentation example against the README's group: three brokers on 127.0.0.2-4, one port.

    python -m tests.helpers.docexample EXAMPLE.py --port P [--drain /queue/X]...

starts the brokers on port P in a scratch directory, runs EXAMPLE.py as a script, takes every message
left on each --drain destination, stops the brokers and prints one JSON object: the example's exit
code, stdout and stderr, and the bodies drained. Run inside a private network namespace
(`unshare --net`, tests/integration/test_docs.py) the port is the documented 61616 itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers.cluster import HOSTS, BrokerProc, stop_all, wait_for_single_master
from transports.client import connect

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TIMEOUT = 60.0


async def drain(url: str, destination: str) -> list[str]:
    async with connect(url) as client:
        sub = client.subscribe(destination)
        bodies: list[str] = []
        while (message := await sub.get(1.0)) is not None:
            bodies.append(message.text)
        return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("example", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--drain", action="append", default=[])
    args = parser.parse_args(argv)
    url = "failover:(" + ",".join(f"tcp://{host}:{args.port}" for host in HOSTS) + ")"
    with tempfile.TemporaryDirectory() as scratch:
        brokers = [BrokerProc(f"b{n}", host, args.port, Path(scratch) / "shared")
                   for n, host in enumerate(HOSTS, start=2)]
        try:
            for broker in brokers:
                broker.start()
            wait_for_single_master(brokers, 30)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            ran = subprocess.run([sys.executable, str(args.example)], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=EXAMPLE_TIMEOUT, check=False)
            drained = {destination: asyncio.run(drain(url, destination)) for destination in args.drain}
        finally:
            stop_all(brokers)
    report = {"code": ran.returncode, "stdout": ran.stdout, "stderr": ran.stderr, "drained": drained}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
