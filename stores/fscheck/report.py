"""Rendering of fscheck results: aligned text for people, one JSON object for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stores.fscheck.checks import FAIL, PASS, SKIP, CheckResult

_INDENT = " " * 6


def passed(results: Sequence[CheckResult]) -> bool:
    """True when every check that ran passed (skipped ones do not count either way)."""
    ran = [r for r in results if r.status != SKIP]
    return bool(ran) and all(r.status == PASS for r in ran)


def text(directory: Path, results: Sequence[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=0)
    lines = [f"batonmq fscheck {directory}"]
    for r in results:
        lines.append(f"{r.status:<4}  {r.name:<{width}}  {r.explanation}")
        lines.extend(f"{_INDENT}warning: {w}" for w in r.details.get("warnings", []))
        if r.status == FAIL and r.advice:
            lines.append(f"{_INDENT}what to do: {r.advice}")
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    verdict = "ok" if passed(results) else "NOT SAFE for a shared broker data directory"
    lines.append(f"{verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def fields(directory: Path, results: Sequence[CheckResult]) -> dict[str, Any]:
    return {
        "command": "fscheck",
        "dir": str(directory),
        "ok": passed(results),
        "checks": [
            {
                "name": r.name,
                "status": r.status,
                "explanation": r.explanation,
                "advice": r.advice,
                "details": r.details,
            }
            for r in results
        ],
    }


def as_json(directory: Path, results: Sequence[CheckResult]) -> str:
    return json.dumps(fields(directory, results), sort_keys=False, default=str)
