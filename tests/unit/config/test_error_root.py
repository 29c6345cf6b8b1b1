"""The error root is importable without configuration: the codec must not load pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_stomp_codec_loads_no_configuration():
    modules = loaded_after("import transports.stomp.codec")
    assert "config.errors" in modules
    assert not {m for m in modules if m == "pydantic" or m.startswith("config.model")}


def test_config_package_itself_imports_nothing():
    modules = loaded_after("import config")
    assert not {m for m in modules if m.startswith("config.") or m == "pydantic"}
