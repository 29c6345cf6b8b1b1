"""`batonmq start` with bad security settings (exit 2, one line), and `batonmq passwd`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config.passwords import verify
from tests.integration.test_cli_start import ROOT, assert_config_error, start


@pytest.mark.parametrize(("content", "key"), [
    ('[[authentication.users]]\nname = "a"\npassword_hash = "hunter2"\n',
     "authentication.users[0].password_hash"),
    ('[[authorization.entries]]\ntopic = ">.x"\nread = "g"\n', "authorization.entries[0].topic"),
    ("[authentication]\ngroups_file = \"g.properties\"\n", "authentication"),
])
def test_invalid_security_settings_in_toml(tmp_path, content: str, key: str) -> None:
    config = tmp_path / "batonmq.toml"
    config.write_text(content)
    line = assert_config_error(start("--config", str(config)), key)
    assert "hunter2" not in line  # a rejected value that might be a password is not echoed


def test_unreadable_users_file_and_unsupported_xml_plugin(tmp_path) -> None:
    config = tmp_path / "batonmq.toml"
    config.write_text(f'[authentication]\nusers_file = "{tmp_path / "absent.properties"}"\n')
    assert_config_error(start("--config", str(config), "--data", str(tmp_path / "d")),
                        str(tmp_path / "absent.properties"))
    xml = tmp_path / "activemq.xml"
    xml.write_text('<broker><plugins><jaasAuthenticationPlugin configuration="activemq"/></plugins></broker>')
    assert_config_error(start("--config", str(xml)), "jaasAuthenticationPlugin")


def test_passwd_prints_a_hash_of_the_password_read_from_stdin() -> None:
    result = subprocess.run([sys.executable, "-m", "broker", "passwd"], cwd=ROOT, input="correct horse\n",
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("$argon2id$") and verify(line, "correct horse") and not verify(line, "wrong")
    empty = subprocess.run([sys.executable, "-m", "broker", "passwd"], cwd=ROOT, input="",
                           capture_output=True, text=True, timeout=30, check=False)
    assert empty.returncode == 2 and empty.stdout == "" and "empty password" in empty.stderr
