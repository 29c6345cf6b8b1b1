"""Queue browsing over STOMP: `SUBSCRIBE` with `browser:true`, as ActiveMQ's STOMP connector has it.

The subscription gets every message waiting in the queue when it subscribed (with a `selector`,
those it matches), in delivery order, none taken out or marked delivered, then ActiveMQ's
end-of-browse frame: a MESSAGE with `browser:end`, `message-id:0`, its subscription and
destination, and no body. After that it stays quiet until UNSUBSCRIBE (new messages are not
browsed). Acks are neither asked for nor taken.

Frames go out while the connection is writable and resume when it drains (the session calls
`pump` from `writing_resumed`), so browsing a long queue holds the references of its snapshot,
never more than the socket's buffer of frames.

A queue that pages (docs/paging.md): the snapshot is what is in memory, then the messages that
were paged at SUBSCRIBE, read from the store in store order a page at a time (admin.PagedScan)
whenever the frames of the page before have gone out; a queue that spills, then the unstored
messages spilled at SUBSCRIBE, in the order they come back, a page at a time too (admin.SpillScan).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.engine import admin
from broker.engine.destinations import is_topic
from broker.engine.errors import ClientError
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from broker.engine.message import Message
    from broker.engine.session import Session

log = logging.getLogger(__name__)

BROWSER_HEADER = "browser"


def is_browser(frame: Frame) -> bool:
    return (frame.get(BROWSER_HEADER) or "").lower() == "true"


class QueueBrowser:
    def __init__(self, session: Session, sub_id: str, destination: str,
                 selector: Callable[[Message], bool | None] | None = None) -> None:
        if is_topic(destination):
            raise ClientError("invalid browser subscription", "browser:true is for queues only")
        self.session = session
        self.id = sub_id
        self.destination = destination
        queue = session.broker.destinations.queues.get(destination)  # browsing creates no queue
        snapshot = admin.snapshot(queue) if queue is not None else []
        self.selector = selector
        self._pending: deque[Message] = deque(self._wanted(snapshot))
        # What waits outside memory, read a page at a time: the paged ones, then the spilled ones.
        self._scans: deque[admin.PagedScan | admin.SpillScan] = deque()
        if queue is not None and queue.paged:
            self._scans.append(admin.PagedScan(queue))
        if queue is not None and queue.spilled:
            self._scans.append(admin.SpillScan(queue))
        self._reading: asyncio.Task[None] | None = None
        self.ended = False

    def _wanted(self, messages: list[Message]) -> list[Message]:
        selector = self.selector
        return messages if selector is None else [m for m in messages if selector(m) is True]

    async def _read(self, scan: admin.PagedScan | admin.SpillScan) -> None:
        try:
            messages = await scan.next()
        except admin.AdminError as exc:
            log.warning("browsing %s: %s; the browse ends early", self.destination, exc.message)
            self._scans.clear()
            messages = []
        finally:
            self._reading = None
        if self.ended:
            return
        if scan.done and self._scans and self._scans[0] is scan:
            self._scans.popleft()
        self._pending.extend(self._wanted(messages))
        self.pump()

    def pump(self) -> None:
        """Send what the connection takes now; the end marker after the last message."""
        session = self.session
        while self._pending and session.writable and not self.ended:
            message = self._pending.popleft()
            headers = dict(message.headers)
            headers.update({"destination": message.destination, "message-id": message.message_id,
                            "subscription": self.id})
            if message.redelivered:
                headers["redelivered"] = "true"
            session.send(Frame("MESSAGE", headers, message.body))
        if not self._pending and self._scans and not self.ended and not session.closed:
            if self._reading is None:  # the paged, then the spilled ones, a page at a time
                self._reading = asyncio.get_running_loop().create_task(self._read(self._scans[0]))
            return
        if not self._pending and not self.ended and not session.closed:
            self.ended = True
            session.send(Frame("MESSAGE", {"subscription": self.id, "browser": "end",
                                           "destination": self.destination, "message-id": "0"}))

    def cancel(self) -> None:
        self._pending.clear()
        self._scans.clear()
        self.ended = True
