"""Spring placeholders in ActiveMQ XML: `${activemq.data}` and its siblings, from the environment.

ActiveMQ's start script (bin/activemq) passes its directories to the JVM as system properties,
which the stock `activemq.xml` then names as `${activemq.base}`, `${activemq.data}`, ... The
script takes them from ACTIVEMQ_HOME, ACTIVEMQ_BASE (default: HOME), ACTIVEMQ_CONF (default:
BASE/conf), ACTIVEMQ_DATA (default: BASE/data) and ACTIVEMQ_TMP (default: BASE/tmp); Debian's init
script sets ACTIVEMQ_BASE=/var/lib/activemq/INSTANCE. BatonMQ reads the same variables with the same
defaults and nothing else: any other placeholder, or one whose variable is unset, stays undefined,
because guessing a directory would put the store somewhere the operator did not choose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def activemq_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """The `activemq.*` properties bin/activemq would define from this environment."""
    def var(name: str) -> str | None:
        return environ.get(name) or None

    home = var("ACTIVEMQ_HOME")
    base = var("ACTIVEMQ_BASE") or home
    found = {
        "activemq.home": home,
        "activemq.base": base,
        "activemq.conf": var("ACTIVEMQ_CONF") or (f"{base}/conf" if base else None),
        "activemq.data": var("ACTIVEMQ_DATA") or (f"{base}/data" if base else None),
        "activemq.tmp": var("ACTIVEMQ_TMP") or (f"{base}/tmp" if base else None),
    }
    return {name: value for name, value in found.items() if value is not None}


def expand(text: str, properties: Mapping[str, str]) -> str:
    """Replace each `${name}` that `properties` defines; leave the others as written."""
    return _PLACEHOLDER.sub(lambda match: properties.get(match.group(1), match.group(0)), text)


def first_unresolved(text: str) -> str | None:
    """The name inside the first `${...}` left in `text`, if any."""
    match = _PLACEHOLDER.search(text)
    if match is not None:
        return match.group(1)
    return "" if "${" in text else None  # an unclosed "${" is not a path either


def unresolved_problem(name: str, text: str) -> str:
    if name.startswith("activemq."):
        variable = "ACTIVEMQ_" + name.removeprefix("activemq.").upper()
        also = "" if variable in ("ACTIVEMQ_BASE", "ACTIVEMQ_HOME") else " (or ACTIVEMQ_BASE)"
        how = f"set {variable}{also} as ActiveMQ's start script does"
    else:
        how = "BatonMQ defines only ${activemq.home|base|conf|data|tmp}, from ACTIVEMQ_* variables"
    return (f"placeholder ${{{name}}} in {text!r} is not defined: {how}, write the value, "
            "or set this setting by flag or BATONMQ_* variable")
