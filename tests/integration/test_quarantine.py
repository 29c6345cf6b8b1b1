"""Damage between intact journal records, met by a real broker process (issue 12 point 5).

By default the broker refuses to open the store (exit 4) and its log names file@offset and the
setting that lets it start; with `store.on_corruption = "quarantine"` it copies the damaged record
aside, serves every message after it, and `batonmq status` lists the quarantined range.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stores.journal import layout
from stores.journal.records import iter_records
from tests.helpers.cluster import free_port
from tests.helpers.daemon import ROOT, daemon
from tests.helpers.stomppy import drain, send_receipted

HOST = "127.0.0.1"


def status(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", "status", "--data", str(data_dir), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_damage_between_records_refuses_then_quarantine_keeps_the_rest_and_status_shows_it(tmp_path):
    data, port = tmp_path / "data", free_port()
    args = ["--data", str(data), "--store", "journal", "--connector", f"tcp://{HOST}:{port}"]
    env = {"BATONMQ_STORE__CHECKPOINT_INTERVAL": "600"}  # the records stay after the checkpoint
    bodies = [f"m{i}" for i in range(5)]
    with daemon(args, env) as first:
        first.wait_for("STOMP connector listening on", 30)
        assert send_receipted(HOST, port, "/queue/q", bodies) == bodies
        first.kill()  # kill -9: no checkpoint on close

    path = max(layout.data_files(data / "journal").items())[1]
    content = path.read_bytes()
    offsets = [r.offset for r in iter_records(content, 0, len(content))]
    second = offsets[2]  # [0] SEAL, [1] m0, [2] m1
    with open(path, "r+b") as f:
        f.seek(second + 20)
        f.write(b"\x00\x00\x00")

    with daemon(args, env) as refused:
        assert refused.wait_exit(30) == 4, refused.text()
        assert f"{path.name}@{second}" in refused.text()
        assert 'store.on_corruption = "quarantine"' in refused.text()

    with daemon(args, {**env, "BATONMQ_STORE__ON_CORRUPTION": "quarantine"}) as started:
        started.wait_for("STOMP connector listening on", 30)
        started.wait_for(rf"{path.name}@{second}: CRC mismatch.* quarantined", 5)
        assert [f.body for f in drain(HOST, port, "/queue/q", idle=2.0)] == ["m0", "m2", "m3", "m4"]
        shown = status(data)
        assert "quarantined: 1 damaged range(s)" in shown.stdout, shown.stdout
        assert f"journal/quarantine/{path.name}@{second}" in shown.stdout
        fields = json.loads(status(data, "--json").stdout)
        assert [Path(q["path"]).name for q in fields["quarantined"]] == [f"{path.name}@{second}"]
        assert started.stop() == 0
