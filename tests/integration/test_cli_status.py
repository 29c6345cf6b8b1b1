"""`batonmq status --data DIR`: who holds the lock, read without disturbing the holder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.lockproc import LockProc

ROOT = Path(__file__).resolve().parents[2]


def status(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", "status", "--data", str(data_dir), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_empty_directory_has_no_master(tmp_path):
    result = status(tmp_path)
    # Exit 1: a script or health check asking "is there a master?" gets "no" from the code alone.
    assert (result.returncode, result.stdout, result.stderr) == (1, "no master (lock free)\n", "")
    as_json = status(tmp_path, "--json")
    assert as_json.returncode == 1
    fields = json.loads(as_json.stdout)
    assert fields["master"] is False and fields["holder"] is None and fields["lock_file"] is False
    assert list(tmp_path.iterdir()) == []  # reading created nothing


def test_holder_in_another_process_is_reported_and_undisturbed(tmp_path):
    with LockProc(tmp_path, "--name", "holder-7", "--bump") as holder:
        identity = json.loads(holder.expect("ACQUIRED"))
        text = status(tmp_path)
        assert text.returncode == 0, text.stderr
        expected = f"master: broker holder-7 on host {identity['host']} pid {holder.pid} epoch "
        assert text.stdout.startswith(expected)
        assert " since " in text.stdout
        fields = json.loads(status(tmp_path, "--json").stdout)
        assert fields["master"] is True
        assert {k: fields["holder"][k] for k in ("name", "host", "pid", "epoch")} == {
            k: identity[k] for k in ("name", "host", "pid", "epoch")}
        holder.send("verify")
        assert holder.expect("") == "OK"  # still holds the lock, file unchanged
        holder.kill()
    after = status(tmp_path)
    assert after.returncode == 1
    assert after.stdout.startswith("no master (lock free); last holder: broker holder-7 ")


def test_missing_directory_is_a_usage_error(tmp_path):
    result = status(tmp_path / "nope")
    assert result.returncode == 2
    assert result.stderr.startswith("batonmq: status: ") and result.stderr.count("\n") == 1
