"""A broker process started from a TOML config with /metrics served, and its scrape."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from tests.helpers.cluster import BrokerProc, free_port


def start_scraped(name: str, host: str, tmp_path: Path, config: str) -> BrokerProc:
    """A master serving on `host` whose config is the TOML `config`; `.metrics` is its port."""
    path = tmp_path / f"{name}.toml"
    path.write_text(config)
    metrics = free_port((host,))
    extra = ("--config", str(path), "--metrics-port", str(metrics), "--metrics-host", host)
    proc = BrokerProc(name, host, free_port((host,)), tmp_path / "data", extra=extra).start()
    proc.metrics = metrics  # type: ignore[attr-defined]
    assert proc.wait_role("master", 20), proc.log_text()
    deadline = time.monotonic() + 10
    while not proc.serving() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def scrape(proc: BrokerProc) -> str:
    url = f"http://{proc.host}:{proc.metrics}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())
