"""Start the `[admin]` listener (the admin API and console) and this broker's member record.

Both run from the start, on masters and slaves alike (as /metrics), so a slave's console shows
the group and names the master; destination operations answer only on the master.
"""

from __future__ import annotations

import asyncio
import logging

from broker.daemon.adminapi import AdminApi, admin_url
from broker.daemon.adminauth import Gatekeeper
from broker.engine.auth import Authenticator
from broker.ha.lifecycle import Lifecycle
from broker.ha.members import keep_member_record
from transports.http import HttpServer

log = logging.getLogger("batonmq.admin")

MAX_BODY = 1024 * 1024  # a move request names at most this many bytes of message ids
MAX_CONNECTIONS = 32


async def start_admin(lifecycle: Lifecycle, authenticator: Authenticator | None) -> list[asyncio.Task[None]]:
    """The tasks serving the admin API (none when `admin.port` is unset); OSError if it cannot bind."""
    settings = lifecycle.config.admin
    if settings.port is None:
        return []
    api = AdminApi(lifecycle, Gatekeeper(lifecycle.config, authenticator))
    server = HttpServer(settings.host, settings.port, handler=api.handle, max_body=MAX_BODY,
                        max_connections=MAX_CONNECTIONS)
    await server.start()
    url = admin_url(settings.host, server.bound_port)
    log.info("admin API and console on %s/", url)
    return [asyncio.ensure_future(server.stop_when_cancelled()),
            asyncio.ensure_future(keep_member_record(lifecycle, url))]
