"""ActiveMQ's security plugins in `activemq.xml`, mapped onto `[authentication]` and `[authorization]`.

    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed=.. anonymousUser=.. anonymousGroup=..>
        <users><authenticationUser username=.. password=.. groups="a,b"/> ...</users>
      </simpleAuthenticationPlugin>
      <authorizationPlugin><map><authorizationMap>
        <authorizationEntries>
          <authorizationEntry queue=".." | topic=".." read="g1,g2" write=".." admin=".."/> ...
        </authorizationEntries>
        <defaultEntry><authorizationEntry read=.. write=.. admin=../></defaultEntry>          (optional)
        <tempDestinationAuthorizationEntry>..</tempDestinationAuthorizationEntry>  (accepted, not
            applied: temporary destinations are open to every user, broker/engine/tempdest.py)
      </authorizationMap></map></authorizationPlugin>
    </plugins>

A `password` that is not an argon2id hash is plain text, as ActiveMQ keeps it: it is hashed at
load and a WARNING says so. Any other authentication or authorization plugin (JAAS, LDAP,
certificates) is refused rather than ignored: a broker that silently dropped it would run open.
Other plugins (statistics, time stamping, ...) are ignored with one WARNING each, as the rest of an
ActiveMQ file's harmless parts are.
"""

from __future__ import annotations

import logging
from typing import Any
from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.passwords import PREFIX, hash_password
from config.units import parse_bool
from config.xmltree import XmlMapping, attributes, children, convert, local

log = logging.getLogger("batonmq.config")

_GROUP_CLASS = "org.apache.activemq.jaas.GroupPrincipal"
_USERS = "authenticationUser"
_AUTHENTICATION = ("authentication",)
_AUTHORIZATION = ("authorization",)


def map_plugins(plugins: Element, out: XmlMapping) -> None:
    attributes(plugins, "plugins", set())
    for plugin in children(plugins):
        name = local(plugin.tag)
        if name == "simpleAuthenticationPlugin":
            _map_simple_authentication(plugin, out)
        elif name == "authorizationPlugin":
            _map_authorization(plugin, out)
        elif "authentication" in name.lower() or "authorization" in name.lower():
            raise ConfigError(name, "not supported (use simpleAuthenticationPlugin, authorizationPlugin or"
                              " [authentication] users_file/groups_file); refusing beats running open")
        else:
            out.ignore(f"<plugins>/<{name}>", "BatonMQ runs no broker plugins besides authentication and "
                                              "authorization")


def _map_simple_authentication(plugin: Element, out: XmlMapping) -> None:
    label = "simpleAuthenticationPlugin"
    attrs = attributes(plugin, label, {"anonymousAccessAllowed", "anonymousUser", "anonymousGroup"})
    if "anonymousAccessAllowed" in attrs:
        allowed = convert(f"{label}@anonymousAccessAllowed", attrs["anonymousAccessAllowed"], parse_bool)
        out.set(_AUTHENTICATION + ("anonymous_access",), allowed, f"{label}@anonymousAccessAllowed")
    for attr, key in (("anonymousUser", "anonymous_user"), ("anonymousGroup", "anonymous_group")):
        if attr in attrs:
            out.set(_AUTHENTICATION + (key,), attrs[attr], f"{label}@{attr}")
    users: list[dict[str, Any]] = []
    for child in children(plugin):
        if local(child.tag) != "users":
            raise ConfigError(f"{label}/{local(child.tag)}", "unknown element (only <users> is honoured)")
        attributes(child, "users", set())
        users += [_user(index, element) for index, element in enumerate(children(child))]
    out.set(_AUTHENTICATION + ("users",), users, f"{label}/users")


def _user(index: int, element: Element) -> dict[str, Any]:
    if local(element.tag) != _USERS:
        raise ConfigError(f"users/{local(element.tag)}", f"unknown element (expected <{_USERS}>)")
    label = f"{_USERS}[{element.get('username') or index}]"
    attrs = attributes(element, label, {"username", "password", "groups"})
    for required in ("username", "password"):
        if required not in attrs:
            raise ConfigError(f"{label}@{required}", "missing")
    password = attrs["password"]
    if not password.startswith(PREFIX):
        log.warning("%s: plain-text password; hashed in memory now, but write the hash that "
                    "`batonmq passwd` prints instead", label)
        password = hash_password(password)
    return {"name": attrs["username"], "password_hash": password, "groups": attrs.get("groups", "")}


def _map_authorization(plugin: Element, out: XmlMapping) -> None:
    attributes(plugin, "authorizationPlugin", set())
    (holder,) = _only(plugin, "map", "authorizationPlugin")
    attributes(holder, "map", set())
    (amap,) = _only(holder, "authorizationMap", "authorizationPlugin/map")
    _group_class(amap, "authorizationMap", {"groupClass"})
    for part in children(amap):
        name = local(part.tag)
        if name == "authorizationEntries":
            attributes(part, name, set())
            entries = [_entry(index, element) for index, element in enumerate(children(part))]
            out.set(_AUTHORIZATION + ("entries",), entries, "authorizationEntries")
        elif name == "defaultEntry":
            attributes(part, name, set())
            (entry,) = _only(part, "authorizationEntry", "defaultEntry")
            _group_class(entry, "defaultEntry", {"read", "write", "admin", "groupClass"})
            out.set(_AUTHORIZATION + ("default",), _rights(entry), "defaultEntry")
        elif name != "tempDestinationAuthorizationEntry":  # not applied (broker/engine/tempdest.py)
            raise ConfigError(f"authorizationMap/{name}", "unknown element")


def _entry(index: int, element: Element) -> dict[str, Any]:
    if local(element.tag) != "authorizationEntry":
        raise ConfigError(f"authorizationEntries/{local(element.tag)}", "unknown element")
    label = f"authorizationEntry[{index}]"
    attrs = _group_class(element, label, {"queue", "topic", "read", "write", "admin", "groupClass"})
    entry = _rights(element)
    for kind in ("queue", "topic"):
        if kind in attrs:
            entry[kind] = attrs[kind]
    return entry


def _rights(element: Element) -> dict[str, Any]:
    return {right: element.get(right, "") for right in ("read", "write", "admin")}


def _group_class(element: Element, label: str, allowed: set[str]) -> dict[str, str]:
    attrs = attributes(element, label, allowed)
    if attrs.get("groupClass", _GROUP_CLASS) != _GROUP_CLASS:
        raise ConfigError(f"{label}@groupClass", f"only {_GROUP_CLASS} is supported: rights go to groups")
    return attrs


def _only(element: Element, tag: str, label: str) -> list[Element]:
    found = children(element)
    if [local(child.tag) for child in found] != [tag]:
        raise ConfigError(label, f"must contain exactly one <{tag}>")
    return found
