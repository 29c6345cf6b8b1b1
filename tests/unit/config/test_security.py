"""[authentication] and [authorization]: TOML, ActiveMQ's XML plugins, properties files, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.loader import build_config
from config.passwords import hash_password, verify
from config.users import load_users

HASH = hash_password("s3cret")

XML = """<beans xmlns="http://www.springframework.org/schema/beans">
<broker xmlns="http://activemq.apache.org/schema/core" brokerName="b">
  <plugins>
    <statisticsBrokerPlugin/>
    <simpleAuthenticationPlugin anonymousAccessAllowed="true" anonymousUser="guest" anonymousGroup="guests">
      <users>
        <authenticationUser username="system" password="manager" groups="users,admins"/>
        <authenticationUser username="app" password="{hash}" groups="users"/>
      </users>
    </simpleAuthenticationPlugin>
    <authorizationPlugin><map><authorizationMap>
      <authorizationEntries>
        <authorizationEntry queue=">" read="admins" write="admins" admin="admins"/>
        <authorizationEntry queue="USERS.>,SHARED" read="users" write="users" admin="users"/>
        <authorizationEntry topic="ActiveMQ.Advisory.>" read="guests,users" write="guests,users"
                            admin="guests,users"/>
      </authorizationEntries>
      <defaultEntry><authorizationEntry read="admins" write="admins" admin="admins"/></defaultEntry>
      <tempDestinationAuthorizationEntry>
        <tempDestinationAuthorizationEntry read="admins" write="admins" admin="admins"/>
      </tempDestinationAuthorizationEntry>
    </authorizationMap></map></authorizationPlugin>
  </plugins>
</broker></beans>"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_activemq_plugins_load_and_plain_passwords_are_hashed_with_a_warning(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, "batonmq.config"):
        config = build_config(write(tmp_path, "activemq.xml", XML.format(hash=HASH)), environ={})
    authn, authz = config.authentication, config.authorization
    assert (authn.anonymous_allowed, authn.anonymous_user, authn.anonymous_group) == (True, "guest", "guests")
    system, app = authn.users
    assert (system.name, system.groups, app.groups) == ("system", ["users", "admins"], ["users"])
    assert system.password_hash.startswith("$argon2id$") and verify(system.password_hash, "manager")
    assert app.password_hash == HASH
    assert [r.getMessage().replace(f"{tmp_path / 'activemq.xml'}: ", "") for r in caplog.records] == [
        "authenticationUser[system]: plain-text password; hashed in memory now, but write the hash that "
        "`batonmq passwd` prints instead",
        "ignored <plugins>/<statisticsBrokerPlugin>: BatonMQ runs no broker plugins besides authentication "
        "and authorization"]
    assert [(e.queue, e.topic, e.read) for e in authz.entries] == [
        (">", None, ["admins"]), ("USERS.>,SHARED", None, ["users"]),
        (None, "ActiveMQ.Advisory.>", ["guests", "users"])]
    assert authz.default is not None and authz.default.write == ["admins"] and authz.enabled


def test_toml_users_need_hashes_and_entries_need_sound_patterns(tmp_path) -> None:
    good = f'[[authentication.users]]\nname = "a"\npassword_hash = "{HASH}"\ngroups = "x, y"\n'
    loaded = build_config(write(tmp_path, "ok.toml", good), environ={})
    assert loaded.authentication.users[0].groups == ["x", "y"]
    cases = {
        '[[authentication.users]]\nname = "a"\npassword_hash = "plain"\n':
            ("authentication.users[0].password_hash", "must be an argon2id hash"),
        '[[authorization.entries]]\nqueue = "A.>.B"\nread = ["g"]\n':
            ("authorization.entries[0].queue", "'>' may only be a whole last element"),
        '[[authorization.entries]]\nqueue = "A"\ntopic = "B"\n':
            ("authorization.entries[0]", "exactly one of queue or topic"),
        "[authentication]\nanonymous_access = false\n": ("authentication", "nobody could connect"),
        '[authorization]\non_denied = "ignore"\n': ("authorization.on_denied", "must be one of error, close"),
    }
    for text, (key, problem) in cases.items():
        with pytest.raises(ConfigError) as info:
            build_config(write(tmp_path, "bad.toml", text), environ={})
        assert info.value.key == key and problem in info.value.problem, (text, info.value)


@pytest.mark.parametrize(("plugin", "key"), [
    ('<jaasAuthenticationPlugin configuration="activemq"/>', "jaasAuthenticationPlugin"),
    ("<jaasCertificateAuthenticationPlugin/>", "jaasCertificateAuthenticationPlugin"),
    ('<simpleAuthenticationPlugin><users><authenticationUser username="u"/></users>'
     "</simpleAuthenticationPlugin>", "authenticationUser[u]@password"),
    ('<simpleAuthenticationPlugin><users><authenticationUser username="u" password="${pw}"/></users>'
     "</simpleAuthenticationPlugin>", "authenticationUser[u]@password"),
    ("<authorizationPlugin><map><cachedLDAPAuthorizationMap/></map></authorizationPlugin>",
     "authorizationPlugin/map"),
    ('<authorizationPlugin><map><authorizationMap groupClass="org.apache.activemq.jaas.UserPrincipal"/>'
     "</map></authorizationPlugin>", "authorizationMap@groupClass"),
])
def test_xml_security_that_cannot_be_honoured_is_refused(tmp_path, plugin: str, key: str) -> None:
    xml = f"<broker><plugins>{plugin}</plugins></broker>"
    with pytest.raises(ConfigError) as info:
        build_config(write(tmp_path, "activemq.xml", xml), environ={})
    assert info.value.key == key and "\n" not in str(info.value)


def test_users_file_errors_name_the_file_and_line(tmp_path) -> None:
    missing = build_config(None, {"BATONMQ_AUTHENTICATION__USERS_FILE": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="no such file"):
        load_users(missing.authentication)
    users = write(tmp_path, "users.properties", "ok=pw\nsecret=ENC(abc)\n")
    config = build_config(None, {"BATONMQ_AUTHENTICATION__USERS_FILE": str(users)})
    with pytest.raises(ConfigError) as info:
        load_users(config.authentication)
    assert info.value.key == f"{users}:2" and "ENC" in info.value.problem
    twice = write(tmp_path, "twice.properties", f"dup={HASH}\ndup : {HASH}\n")
    with pytest.raises(ConfigError, match="configured twice"):
        load_users(build_config(None, {"BATONMQ_AUTHENTICATION__USERS_FILE": str(twice)}).authentication)


def test_properties_syntax_continuations_escapes_and_separators(tmp_path) -> None:
    text = ("# comment\n! also\n  spaced   :  pw one\nlong=abc\\\n    def\nesc\\=aped=v\\u00e9\\\\\n"
            f"hashed {HASH}\n")
    users = write(tmp_path, "users.properties", text)
    groups = write(tmp_path, "groups.properties", "g1=spaced, long\ng2 = long\n")
    config = build_config(None, {"BATONMQ_AUTHENTICATION__USERS_FILE": str(users),
                                 "BATONMQ_AUTHENTICATION__GROUPS_FILE": str(groups)})
    loaded = {u.name: u for u in load_users(config.authentication)}
    assert list(loaded) == ["spaced", "long", "esc=aped", "hashed"]
    assert verify(loaded["spaced"].password_hash, "pw one") and verify(loaded["long"].password_hash, "abcdef")
    assert verify(loaded["esc=aped"].password_hash, "v\u00e9\\") and loaded["hashed"].password_hash == HASH
    assert loaded["long"].groups == ["g1", "g2"] and loaded["hashed"].groups == []
