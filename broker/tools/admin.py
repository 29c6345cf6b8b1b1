"""`batonmq admin`: the admin API (docs/admin.md) from the command line, as a table or JSON.

Blocking HTTP with the standard library (one request per command). Errors are one line on stderr
and an exit code: 0 done; 1 the broker answered with an error (no such queue, in use, not
master) or could not be reached; 2 bad arguments; 3 refused (wrong credentials, no admin right).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

PASSWORD_ENV = "BATONMQ_ADMIN_PASSWORD"
MAX_ANSWER = 64 * 1024 * 1024
OK, FAILED, USAGE, REFUSED = 0, 1, 2, 3


class AdminCallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class AdminClient:
    url: str
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def call(self, method: str, path: str, body: object | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if method != "GET":
            headers["Content-Type"] = "application/json"
            data = json.dumps(body or {}).encode()
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.url.rstrip("/") + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (http only)
                return _decode(answer.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            problem = _decode(exc.read(MAX_ANSWER)).get("error") or exc.reason
            code = REFUSED if exc.code in (401, 403) else FAILED
            raise AdminCallError(code, f"{exc.code} {problem}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminCallError(FAILED, f"cannot reach {self.url}: {reason}") from None


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return f"invalid admin URL {url!r}: expected http://HOST:PORT"
    return None


def api_path(destination: str, default_kind: str = "queue") -> str:
    """/queue/A.B or A.B -> /api/queues/A.B; /topic/X -> /api/topics/X."""
    for kind in ("queue", "topic"):
        prefix = f"/{kind}/"
        if destination.startswith(prefix) and len(destination) > len(prefix):
            return f"/api/{kind}s/{quote(destination[len(prefix):], safe='')}"
    if destination.startswith("/") or not destination:
        raise AdminCallError(USAGE, f"invalid destination {destination!r}: expected /queue/NAME, "
                             "/topic/NAME or NAME")
    return f"/api/{default_kind}s/{quote(destination, safe='')}"


def run(client: AdminClient, command: str, options: Any) -> dict[str, Any]:
    """Carry out one `batonmq admin` command; the API's answer."""
    if command == "list":
        return client.call("GET", "/api/destinations")
    if command == "brokers":
        return client.call("GET", "/api/brokers")
    if command == "browse":
        query = urlencode({"offset": options.offset, "limit": options.limit, "body": options.body})
        return client.call("GET", f"{api_path(options.queue)}/messages?{query}")
    if command == "purge":
        return client.call("POST", f"{api_path(options.queue)}/purge")
    if command == "move":
        spec: dict[str, Any] = {"to": options.to, "copy": options.copy}
        if options.id:
            spec["ids"] = options.id
        if options.limit is not None:
            spec["limit"] = options.limit
        return client.call("POST", f"{api_path(options.queue)}/move", spec)
    if command == "delete":
        return client.call("DELETE", api_path(options.destination))
    if command == "remove":
        return client.call("DELETE", f"{api_path(options.queue)}/messages/{quote(options.id, safe='')}")
    raise AdminCallError(USAGE, f"unknown admin command {command!r}")


# -- output ------------------------------------------------------------------------------------------


def text(command: str, answer: dict[str, Any]) -> str:
    if command == "list":
        return _destinations(answer["destinations"])
    if command == "brokers":
        master = answer.get("master")
        head = (f"master: {master['name']} on {master['host']} pid {master['pid']}, epoch {answer['epoch']}"
                if master else "no master heartbeat yet")
        rows = [[m["name"], m["host"], m["role"] if m["fresh"] else f"gone ({m['role']})", m["epoch"] or "",
                 _lag(m.get("standby")), m.get("admin_url") or ""] for m in answer["members"]]
        return head + "\n" + table(["BROKER", "HOST", "ROLE", "EPOCH", "STANDBY LAG", "ADMIN"], rows)
    if command == "browse":
        rows = [[m["id"], m["priority"], "yes" if m["persistent"] else "no",
                 m["headers"].get("original-destination", ""), _preview(m)] for m in answer["messages"]]
        head = f"{answer['destination']}: {answer['depth']} waiting, {answer['in_flight']} in flight"
        listing = table(["ID", "PRIORITY", "PERSISTENT", "ORIGINAL", "BODY"], rows)
        return head + ("\n" + listing if rows else "")
    if command == "purge":
        return f"purged {answer['purged']} message(s) from {answer['destination']}"
    if command == "move":
        verb = "copied" if "copied" in answer else "moved"
        targets = ", ".join(f"{n} to {t}" for t, n in sorted(answer["targets"].items())) or "none"
        return f"{verb} {answer[verb]} message(s) from {answer['destination']} ({targets}); " \
               f"{answer['skipped']} skipped"
    if command == "delete":
        return f"deleted {answer['deleted']} ({answer['purged']} message(s) purged)"
    return f"removed {answer['removed']} from {answer['destination']}"


def _destinations(rows: list[dict[str, Any]]) -> str:
    # PAGED and SPILLED: of DEPTH, the messages in the store or the temporary store only
    # (docs/paging.md); POLICY: the [[policy]] pattern the destination got. Older brokers send none.
    cells = [[d["name"], d["kind"], d["depth"], d.get("paged", 0), d.get("spilled", 0), d["in_flight"],
              d["consumers"], d["enqueued"], d["dequeued"], d.get("policy", ""), _age(d["oldest_age_ms"])]
             for d in rows]
    return table(["DESTINATION", "KIND", "DEPTH", "PAGED", "SPILLED", "IN-FLIGHT", "CONSUMERS", "ENQUEUED",
                  "DEQUEUED", "POLICY", "OLDEST"], cells) if cells else "no destinations"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    return "\n".join(lines)


def _age(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


def _lag(standby: dict[str, Any] | None) -> str:
    if not standby:
        return ""
    lag = standby.get("lag_seconds")
    return "catching up" if lag is None else f"{lag:.2f}s"


def _preview(message: dict[str, Any]) -> str:
    if message["body_encoding"] != "utf-8":
        return f"({message['size']} bytes, binary)"
    body = str(message["body"]).replace("\n", " ")
    return body[:60] + ("..." if len(body) > 60 or message["body_truncated"] else "")


def main(args: Any) -> int:
    if problem := check_url(args.url):
        print(f"batonmq admin: {problem}", file=sys.stderr)
        return USAGE
    password = os.environ.get(PASSWORD_ENV)
    if args.user is not None and password is None and sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {args.user}: ")
    client = AdminClient(args.url, args.user, password, args.timeout)
    try:
        answer = run(client, args.admin_command, args)
    except AdminCallError as exc:
        print(f"batonmq admin {args.admin_command}: {exc.message}", file=sys.stderr)
        return exc.code
    print(json.dumps(answer) if args.json else text(args.admin_command, answer), flush=True)
    return OK
