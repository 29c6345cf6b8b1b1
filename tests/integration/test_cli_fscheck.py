"""`batonmq fscheck DIR`: the command as users run it, as real processes on a real directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.lockproc import LockProc

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ["basic", "exclusive", "exclusive-peer", "release-on-death", "handover", "keep-alive"]


def command(directory: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "broker", "fscheck", str(directory), *args]


def fscheck(directory: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(directory, *args), cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)


def statuses(stdout: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in stdout.splitlines()[1:-1] if line[:4].strip()
            in ("PASS", "FAIL", "SKIP")}


def test_all_checks_pass_beside_a_live_broker_lock_without_touching_it(tmp_path):
    with LockProc(tmp_path, "--name", "real-master") as master:
        identity = master.expect("ACQUIRED")
        result = fscheck(tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert statuses(result.stdout) == {name: "PASS" for name in CHECKS} | {"exclusive-peer": "SKIP"}
        assert result.stdout.splitlines()[-1] == "ok: 5 passed, 0 failed, 1 skipped"
        assert "release-on-death" in result.stdout and "90 s" in result.stdout
        master.send("verify")
        assert master.expect("") == "OK"  # the broker's own lock file is untouched
        assert (tmp_path / "lock").read_text().strip() == identity
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


def test_a_lock_that_survives_its_holder_fails_release_on_death(tmp_path):
    result = fscheck(tmp_path, "--release-bound", "1", "--simulate-stuck-holder", "20", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    death = by_name["release-on-death"]
    assert death["status"] == "FAIL"
    assert death["explanation"].startswith("the lock was still held 1 s after its holder (pid ")
    assert "use NFSv4" in death["advice"]
    assert [c["name"] for c in report["checks"] if c["status"] == "FAIL"] == ["release-on-death"]
    assert list(tmp_path.iterdir()) == []


def test_two_instances_test_each_other_through_the_directory(tmp_path):
    first = subprocess.Popen(command(tmp_path, "--peer", "--wait-for-peer", "20", "--json"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        second = fscheck(tmp_path, "--peer", "--wait-for-peer", "20")
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert (first.returncode, second.returncode) == (0, 0), err + second.stderr
    assert statuses(second.stdout)["exclusive-peer"] == "PASS"
    peer = {c["name"]: c for c in json.loads(out)["checks"]}["exclusive-peer"]
    assert peer["status"] == "PASS" and peer["explanation"].endswith("and the other way round")
    details = peer["details"]
    assert {details["round_1"]["acquired"], details["round_2"]["acquired"]} == {False}
    holders = [details["round_1"]["holder"], details["round_2"]["holder"]]
    assert len(set(holders)) == 2 and sum(h.endswith(f" pid {first.pid}") for h in holders) == 1
    assert list(tmp_path.iterdir()) == []


def test_peer_alone_fails_after_waiting(tmp_path):
    result = fscheck(tmp_path, "--peer", "--wait-for-peer", "0.5")
    assert result.returncode == 1
    assert "FAIL  exclusive-peer    no peer announced itself in " in result.stdout
    assert statuses(result.stdout)["basic"] == "PASS"


@pytest.mark.parametrize("case", ["missing", "file", "unwritable", "bound"])
def test_bad_arguments_exit_2_with_one_line(tmp_path, case):
    args: list[str] = []
    target: Path | str = tmp_path
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "file":
        target = tmp_path / "f"
        target.write_text("")
    elif case == "unwritable":
        if os.geteuid() == 0:  # root writes anywhere a mode allows: use a file system that refuses
            target = "/sys/kernel"
            if not os.path.isdir(target):
                pytest.skip("no /sys to stand for an unwritable directory")
        else:
            target = tmp_path / "ro"
            target.mkdir(mode=0o500)
    else:
        args = ["--release-bound", "0"]
    result = fscheck(target, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("batonmq: fscheck: ") and result.stderr.count("\n") == 1
