"""Who may do what on which destination: ActiveMQ's authorizationMap (docs/security.md).

Each right of a destination goes to the union of the groups that every matching entry (and the
default entry) names for it, as ActiveMQ's DefaultAuthorizationMap computes it; a destination no
entry matches is refused to everyone; the group `*` is everyone. The rights:

- read: SUBSCRIBE (a durable subscription too);
- write: SEND;
- admin: creating a destination, that is the first SEND or SUBSCRIBE to a name the broker does
  not hold yet (ActiveMQ's addDestination check), on top of the right the frame itself needs.

The broker's own moves are not checked (ActiveMQ's broker context): a message dead-lettered to
`ActiveMQ.DLQ` gets there whoever may write it, and reading it needs read on `queue ActiveMQ.DLQ`.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.engine.auth import Principal
from broker.engine.destinations import QUEUE_PREFIX, TOPIC_PREFIX
from broker.engine.errors import Forbidden
from broker.engine.wildcard import Pattern, compile_pattern, matches
from config.security import RIGHTS, AuthorizationSettings, Right

EVERYONE = "*"
MAX_CACHED = 10_000  # destinations whose rights are remembered (clients may name many)

Acl = dict[str, frozenset[str]]  # right -> groups


class AccessMap:
    def __init__(self, settings: AuthorizationSettings) -> None:
        self._entries: list[tuple[str, Pattern, Acl]] = []
        for entry in settings.entries:
            acl = _acl(entry.read, entry.write, entry.admin)
            for kind in ("queue", "topic"):
                patterns = getattr(entry, kind)
                if patterns is not None:
                    self._entries += [(kind, compile_pattern(p.strip()), acl) for p in patterns.split(",")]
        default = settings.default
        self._default = _acl(default.read, default.write, default.admin) if default else None
        self._cache: dict[str, Acl] = {}

    def allows(self, principal: Principal, right: Right, destination: str) -> bool:
        groups = self._rights(destination)[right]
        return EVERYONE in groups or not groups.isdisjoint(principal.groups)

    def check(self, principal: Principal, right: Right, destination: str) -> None:
        if not self.allows(principal, right, destination):
            raise Forbidden(right, destination, principal.name)

    def _rights(self, destination: str) -> Acl:
        acl = self._cache.get(destination)
        if acl is None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()  # a rebuild costs one pass over the entries per name
            acl = self._cache[destination] = self._compute(destination)
        return acl

    def _compute(self, destination: str) -> Acl:
        if destination.startswith(QUEUE_PREFIX):
            kind, name = "queue", destination[len(QUEUE_PREFIX):]
        elif destination.startswith(TOPIC_PREFIX):
            kind, name = "topic", destination[len(TOPIC_PREFIX):]
        else:
            return _acl((), (), ())
        found = [acl for k, pattern, acl in self._entries if k == kind and matches(pattern, name)]
        if self._default is not None:
            found.append(self._default)
        return {right: frozenset().union(*(acl[right] for acl in found)) for right in RIGHTS}


def _acl(read: Iterable[str], write: Iterable[str], admin: Iterable[str]) -> Acl:
    return {"read": frozenset(read), "write": frozenset(write), "admin": frozenset(admin)}
