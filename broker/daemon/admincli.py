"""The `batonmq admin` subcommands' arguments (their work is broker/tools/admin.py)."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8161"
EPILOG = ("the password comes from $BATONMQ_ADMIN_PASSWORD, else is asked on the terminal. "
          "exit codes: 0 done; 1 the broker answered with an error (no such queue, in use, not master) "
          "or was not reached; 2 bad arguments; 3 refused (wrong credentials, or no admin right)")


def run_admin(args: argparse.Namespace) -> int:
    from broker.tools.admin import main

    return main(args)


def add_admin(commands: Any, subparser: Any) -> None:
    """Add `admin` and its commands; `subparser(commands, name, help)` is the CLI's own factory."""
    p: argparse.ArgumentParser = subparser(commands, "admin", "list, browse, purge, move and remove messages "
                                           "through a broker's admin API ([admin] port)")
    p.epilog = EPILOG
    inner = p.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = inner.add_parser(name, help=help_text, description=help_text,
                                                        epilog=EPILOG)
        sub.set_defaults(run=run_admin)
        sub.add_argument("--url", default=DEFAULT_URL, help=f"the admin API (default {DEFAULT_URL})")
        sub.add_argument("--user", help="log in as this user (HTTP basic auth)")
        sub.add_argument("--json", action="store_true", help="print the API's JSON answer")
        sub.add_argument("--timeout", type=float, default=30.0, metavar="S",
                         help="seconds to wait for the answer (default 30)")
        return sub

    action("list", "destinations with depth, in-flight, consumers, counts and oldest message age")
    action("brokers", "the group: master, epoch, each broker's role and standby lag")
    browse = action("browse", "show waiting messages of a queue without removing them")
    browse.add_argument("queue", metavar="QUEUE", help="/queue/NAME or NAME")
    browse.add_argument("--offset", type=int, default=0, help="skip this many messages (default 0)")
    browse.add_argument("--limit", type=int, default=50, help="messages to show, 1-1000 (default 50)")
    browse.add_argument("--body", type=int, default=1024, metavar="BYTES",
                        help="bytes of each body to fetch (default 1024)")
    purge = action("purge", "remove every waiting message of a queue")
    purge.add_argument("queue", metavar="QUEUE")
    move = action("move", "move (or copy) waiting messages to another queue, or each to its original "
                  "destination (dead letters)")
    move.add_argument("queue", metavar="QUEUE", help="the source, e.g. ActiveMQ.DLQ")
    move.add_argument("--to", metavar="QUEUE",
                      help="the target (default: each message's original-destination)")
    move.add_argument("--id", action="append", metavar="MESSAGE-ID", help="only this message (repeatable)")
    move.add_argument("--limit", type=int, help="at most this many messages (default all)")
    move.add_argument("--copy", action="store_true", help="copy: leave the source as it is")
    delete = action("delete", "delete a queue (with its waiting messages) or a topic")
    delete.add_argument("destination", metavar="DESTINATION",
                        help="/queue/NAME, /topic/NAME or NAME (a queue)")
    remove = action("remove", "remove one waiting message by id")
    remove.add_argument("queue", metavar="QUEUE")
    remove.add_argument("id", metavar="MESSAGE-ID")
