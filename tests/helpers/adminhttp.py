"""A broker process with its [admin] listener, and plain-HTTP calls to it (the standard library's
http.client: an independent client, not ours)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.cluster import BrokerProc, free_port

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


class AdminBroker:
    """A BrokerProc on 127.0.0.1 with `--admin-port`; `call` speaks to its admin API."""

    def __init__(self, name: str, data_dir: Path, *extra: str, store: str = "journal") -> None:
        self.port = free_port((HOST,))
        self.admin_port = free_port((HOST,))
        self.proc = BrokerProc(name, HOST, self.port, data_dir, store=store,
                               extra=("--admin-port", str(self.admin_port), *extra))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    def start(self, role: str = "master", timeout: float = 30.0) -> AdminBroker:
        self.proc.start()
        assert self.proc.wait_role(role, timeout), self.proc.log_text()
        assert wait_for(lambda: serves_http(self.admin_port), timeout), self.proc.log_text()
        return self

    def call(self, method: str, path: str, body: object | None = None, user: tuple[str, str] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        return call(self.admin_port, method, path, body, user, headers)


def call(port: int, method: str, path: str, body: object | None = None, user: tuple[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    sent = dict(headers or {})
    data = None
    if body is not None or method in ("POST", "DELETE"):
        sent.setdefault("Content-Type", "application/json")
        data = json.dumps(body or {}).encode()
    if user is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, data, sent)
        answer = conn.getresponse()
        raw = answer.read()
        reply_headers = {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()
    parsed = json.loads(raw) if reply_headers.get("content-type", "").startswith("application/json") else {}
    return answer.status, parsed, reply_headers


def serves_http(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def admin_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", "admin", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                          check=False)


def depth(broker: AdminBroker, name: str, user: tuple[str, str] | None = None) -> int | None:
    status, data, _ = broker.call("GET", "/api/destinations", user=user)
    assert status == 200, data
    rows = {row["name"]: row for row in data["destinations"]}
    return rows[name]["depth"] if name in rows else None
