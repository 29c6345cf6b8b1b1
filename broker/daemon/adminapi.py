"""The admin API (docs/admin.md): JSON over HTTP on the `[admin]` listener, and the web console.

Routes (NAME is a queue or topic name without its /queue/ or /topic/ prefix, percent-encoded):

    GET    /api/brokers                      the group: master, epoch, each member's role and lag
    GET    /api/destinations                 queues, topics, durable subscriptions and their counts
    GET    /api/overview                     both in one answer (what the console polls)
    GET    /api/queues/NAME/messages         browse: ?offset=0&limit=50&body=1024 (bytes of body)
    POST   /api/queues/NAME/purge            remove every waiting message
    POST   /api/queues/NAME/move             {"to": "/queue/X" | null, "ids": [...], "limit": N,
                                              "copy": false}; "to" null: each to its original
                                              destination (a dead letter going home)
    DELETE /api/queues/NAME/messages/ID      remove one waiting message
    DELETE /api/queues/NAME, /api/topics/NAME  delete the destination
    GET    /, /console                       the web console (broker/daemon/console.html)

Every answer is a JSON object; a failure is {"error": "one line"} with its status (400, 401,
403, 404, 409, 415, 503 on a slave for destination operations). Who may do what: adminauth.py.
The queue operations themselves are the engine's (broker/engine/admin.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Any

from broker.daemon.adminauth import Denied, Gatekeeper, check_change_request
from broker.engine import admin
from broker.engine.admin import AdminError
from broker.engine.auth import Principal
from broker.engine.destinations import QUEUE_PREFIX, TOPIC_PREFIX
from broker.engine.queue import Queue
from broker.ha.members import group_view
from broker.ha.roles import Role
from transports.http import Reply, Request

if TYPE_CHECKING:
    from broker.engine.core import Broker
    from broker.engine.message import Message
    from broker.ha.lifecycle import Lifecycle

log = logging.getLogger("batonmq.admin")

JSON = "application/json"
MAX_PAGE_BYTES = 4 * 1024 * 1024  # of bodies in one browse answer
DEFAULT_BODY = 1024
CHALLENGE = {"WWW-Authenticate": 'Basic realm="batonmq admin", charset="UTF-8"'}


def reply(status: int, data: object, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Reply(status, JSON, body, {"Cache-Control": "no-store", **(headers or {})})


class AdminApi:
    def __init__(self, lifecycle: Lifecycle, gatekeeper: Gatekeeper) -> None:
        self.lifecycle = lifecycle
        self.gate = gatekeeper
        self.console = resources.files("broker.daemon").joinpath("console.html").read_bytes()

    async def handle(self, request: Request) -> Reply:
        try:
            return await self._dispatch(request)
        except Denied as exc:
            return reply(exc.status, {"error": exc.message}, CHALLENGE if exc.status == 401 else None)
        except AdminError as exc:
            return reply(exc.status, {"error": exc.message})
        except Exception:  # a bug must not leave the client without an answer
            log.exception("admin API: %s %s failed", request.method, request.path[:200])
            return reply(500, {"error": "internal error (see the broker's log)"})

    async def _dispatch(self, request: Request) -> Reply:
        parts, method = request.segments(), request.method
        principal = await self.gate.principal(request)  # the page too: a browser then asks for a login
        if method in ("GET", "HEAD") and parts in ([], ["console"]):
            return Reply(200, "text/html; charset=utf-8", self.console,
                         {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                          "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"})
        if not parts or parts[0] != "api":
            return reply(404, {"error": "not found"})
        if method not in ("GET", "HEAD"):
            check_change_request(request)
        route = parts[1:]
        if method == "GET" and route == ["brokers"]:
            return reply(200, await self._group())
        if method == "GET" and route == ["destinations"]:
            return reply(200, {"destinations": self._destinations(principal)})
        if method == "GET" and route == ["overview"]:
            return reply(200, {"self": self._self(), "group": await self._group(),
                               "destinations": self._destinations(principal)})
        if len(route) >= 2 and route[0] in ("queues", "topics"):
            prefix = QUEUE_PREFIX if route[0] == "queues" else TOPIC_PREFIX
            return await self._destination(request, principal, prefix + route[1], route[0], route[2:])
        return reply(404 if method in ("GET", "HEAD") else 405, {"error": "no such operation"})

    async def _destination(self, request: Request, principal: Principal, name: str, kind: str,
                           rest: list[str]) -> Reply:
        method = request.method
        self.gate.check(principal, name)
        broker = self._broker()
        if method == "DELETE" and not rest:
            return reply(200, {"deleted": name, "purged": await admin.delete(broker, name)})
        if kind != "queues":
            return reply(405, {"error": "topics can only be deleted"})
        queue = admin.queue_of(broker, name)
        if method == "GET" and rest == ["messages"]:
            return reply(200, await browse_page(queue, request.query))
        if method == "POST" and rest == ["purge"]:
            return reply(200, {"destination": name, "purged": await admin.purge(broker, queue)})
        if method == "POST" and rest == ["move"]:
            return await self._move(request, principal, broker, queue)
        if method == "DELETE" and len(rest) == 2 and rest[0] == "messages":
            await admin.remove(broker, queue, rest[1])
            return reply(200, {"destination": name, "removed": rest[1]})
        return reply(405, {"error": "no such operation"})

    async def _move(self, request: Request, principal: Principal, broker: Broker, queue: Queue) -> Reply:
        spec = _json_object(request.body)
        target, ids, limit, copy = spec.get("to"), spec.get("ids"), spec.get("limit", admin.MAX_MOVE), \
            spec.get("copy", False)
        if target is not None and not isinstance(target, str):
            raise AdminError(400, '"to" must be a destination name or null')
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise AdminError(400, '"ids" must be a list of message ids')
        if not isinstance(limit, int) or isinstance(limit, bool) or not isinstance(copy, bool):
            raise AdminError(400, '"limit" must be an integer and "copy" true or false')
        if target is not None:
            target = target if target.startswith(("/queue/", "/topic/")) else QUEUE_PREFIX + target
            self.gate.check(principal, target)
        else:
            await self._check_homes(principal, queue, ids)
        moved = await admin.move(broker, queue, target, ids, limit, copy)
        return reply(200, {"destination": queue.name, "copied" if copy else "moved": moved.moved,
                           "skipped": moved.skipped, "targets": moved.targets})

    async def _check_homes(self, principal: Principal, queue: Queue, ids: list[str] | None) -> None:
        """Moving dead letters home needs the admin right on every destination they go to (paged
        ones too: the move reads them as well)."""
        wanted = None if ids is None else set(ids)
        homes = {m.headers.get(admin.ORIGINAL_DESTINATION) for m in await admin.waiting(queue)
                 if wanted is None or m.message_id in wanted}
        for home in sorted(h for h in homes if h):
            self.gate.check(principal, home)

    def _broker(self) -> Broker:
        term = self.lifecycle.term
        broker = term.broker if term is not None else None
        if broker is None or self.lifecycle.role is not Role.MASTER:
            raise AdminError(503, f"this broker is {self.lifecycle.role.value}, not master: "
                             "ask the master's admin API (GET /api/brokers lists it)")
        return broker

    def _self(self) -> dict[str, Any]:
        lifecycle, term = self.lifecycle, self.lifecycle.term
        return {"name": lifecycle.config.name, "role": lifecycle.role.value,
                "epoch": term.epoch if term is not None else 0}

    async def _group(self) -> dict[str, Any]:
        return await asyncio.to_thread(group_view, self.lifecycle.config.data_dir)

    def _destinations(self, principal: Principal) -> list[dict[str, Any]]:
        term = self.lifecycle.term
        broker = term.broker if term is not None and self.lifecycle.role is Role.MASTER else None
        if broker is None:
            return []
        rows = admin.destinations(broker)
        return [row_fields(row) for row in rows if self.gate.allows(principal, row.name)]


def row_fields(row: admin.DestinationRow) -> dict[str, Any]:
    return asdict(row)


async def browse_page(queue: Queue, query: dict[str, str]) -> dict[str, Any]:
    offset, limit = _int(query, "offset", 0), _int(query, "limit", 50)
    messages = await admin.browse(queue, offset, limit)
    body_bytes = min(_int(query, "body", DEFAULT_BODY), MAX_PAGE_BYTES // max(1, len(messages) or 1))
    return {"destination": queue.name, "offset": offset, "limit": limit, "depth": queue.depth,
            "paged": queue.paged, "spilled": queue.spilled, "in_flight": queue.in_flight,
            "messages": [message_fields(m, body_bytes) for m in messages]}


def message_fields(message: Message, body_bytes: int) -> dict[str, Any]:
    body = message.body[:body_bytes]
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {"id": message.message_id, "destination": message.destination, "persistent": message.persistent,
            "priority": message.priority, "redelivered": message.redelivered, "size": len(message.body),
            "timestamp": _int(message.headers, "timestamp", 0, strict=False), "expires": message.expires,
            "headers": message.headers, "body": text, "body_encoding": encoding,
            "body_truncated": len(message.body) > body_bytes}


def _int(values: dict[str, str], name: str, default: int, strict: bool = True) -> int:
    text = values.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 18:
        if not strict:
            return default
        raise AdminError(400, f"{name} must be a non-negative integer")
    return int(text)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise AdminError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise AdminError(400, "the body must be a JSON object")
    return data


def admin_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"

