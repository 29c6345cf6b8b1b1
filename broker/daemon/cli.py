"""The command line of design.md section 6: `batonmq start|produce|consume|status|passwd|admin`.

Thin by design (as uvicorn's): parse arguments, build options, call the programmatic entry point
(`broker.daemon.run.run`, `broker.tools.*`), print one summary line, return the exit code. Exit codes:
0 success, 1 failure (the run did not do everything asked), 2 bad arguments or configuration, 130
interrupted (Ctrl-C; produce and consume still print their summary); `start` adds the broker's own
codes (broker.ha.roles.ExitCode).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from broker.daemon.admincli import add_admin
from broker.ha.roles import ExitCode
from config.errors import ConfigError
from transports import eventloop

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
PROG = "batonmq"

T = TypeVar("T")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("batonmq")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return ExitCode.FORCED


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=LOG_FORMAT, force=True)


def fail(message: str, code: int = ExitCode.USAGE) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


# -- start -----------------------------------------------------------------------------------


def start_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as a nested override dict for config.loader.build_config; None = flag not given.
    Values stay strings where the model validates them, so a bad one is a ConfigError naming its key."""
    return {
        "name": args.name,
        "data_dir": args.data,
        "store": {"type": args.store, "usage_limit": args.store_usage_limit,
                  "usage_timeout": args.store_usage_timeout, "cursor_window": args.cursor_window},
        "connectors": args.connector or None,
        "metrics_port": args.metrics_port,
        "metrics_host": args.metrics_host,
        "metrics_destination_names": args.metrics_destination_names,
        "admin": {"port": args.admin_port, "host": args.admin_host},
        "tls": {"cert": args.tls_cert, "key": args.tls_key, "ca": args.tls_ca,
                "client_auth": args.tls_client_auth},
        "lock": {
            "acquire_interval": args.lock_acquire_interval,
            "keepalive_period": args.lock_keepalive_period,
            "lock_timeout": args.lock_timeout,
            "on_lock_lost": args.on_lock_lost,
        },
        "limits": {
            "memory_budget": args.memory_budget,
            "connection_memory_limit": args.connection_memory_limit,
            "producer_flow_control_timeout": args.producer_flow_control_timeout,
            "non_persistent": args.non_persistent,
            "temp_usage": args.temp_usage,
        },
    }


def run_start(args: argparse.Namespace) -> int:
    from config.loader import build_config
    from transports.registry import SCHEMES
    from transports.tls import check_tls_connectors

    file = args.config or os.environ.get("BATONMQ_CONFIG") or None
    from broker.daemon.run import load_authenticator, run  # lazily: `produce`/`status` need none of it

    try:
        config = build_config(Path(file) if file else None, os.environ, start_overrides(args), SCHEMES)
        check_tls_connectors(config)
        authenticator = load_authenticator(config)
    except ConfigError as exc:
        return fail(f"invalid configuration: {exc.key}: {exc.problem}")
    from broker.daemon.preflight import PreflightError, preflight

    try:
        preflight(config)  # before the lock: nothing taken, no epoch bumped
    except PreflightError as exc:
        return fail(f"cannot start: {exc}", ExitCode.CONFIG)
    return run(config, authenticator)


# -- produce / consume / status ---------------------------------------------------------------


def _check_url(url: str) -> str | None:
    from transports.url import UrlError, parse_url

    try:
        parse_url(url)
    except UrlError as exc:
        return f"invalid URL {url!r}: {exc}"
    return None


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    return eventloop.run(coro)


# STOMP destinations as ActiveMQ names them; the temporary ones are created by the broker.
DESTINATION_PREFIXES = ("/queue/", "/topic/", "/temp-queue/", "/temp-topic/")


def _check_destination(destination: str) -> str | None:
    """Checked before connecting. The broker takes a name without a prefix as that queue (ActiveMQ's
    fallback), but the command line asks for the prefix: a bare `topic/x` is a typo, not a queue."""
    prefix = next((p for p in DESTINATION_PREFIXES if destination.startswith(p)), None)
    if prefix is None:
        hint = f"; for a queue write /queue/{destination.lstrip('/')}" if destination.strip("/") else ""
        return f"invalid destination {destination!r}: expected /queue/NAME or /topic/NAME{hint}"
    if len(destination) == len(prefix):
        return f"invalid destination {destination!r}: the name after {prefix} is empty"
    return None


def _report(result: Any, as_json: bool) -> int:
    print(json.dumps(result.fields()) if as_json else result.text(), flush=True)
    if result.interrupted:
        return ExitCode.FORCED
    return ExitCode.OK if result.ok else ExitCode.FAILED


def _client_tls(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The SSL context for ssl:// brokers from --tls-ca/--tls-cert/--tls-key, or a problem."""
    from transports.tls import client_context
    from transports.url import parse_url

    given = [flag for flag, value in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert),
                                      ("--tls-key", args.tls_key)) if value]
    if not parse_url(args.url).tls:
        # Plain TCP while the user believes TLS is on would be the worst way to ignore a flag.
        return None, f"{', '.join(given)} given, but the URL names no ssl:// broker" if given else None
    try:
        ca, cert, key = (Path(v) if v else None for v in (args.tls_ca, args.tls_cert, args.tls_key))
        return client_context(ca, cert, key), None
    except ConfigError as exc:
        return None, f"invalid {exc.key}: {exc.problem}"


def _client_checks(args: argparse.Namespace) -> tuple[Any, str | None]:
    """What produce and consume check before connecting: URL, destination, then the TLS flags."""
    if problem := _check_url(args.url) or _check_destination(args.destination):
        return None, problem
    return _client_tls(args)


def run_produce(args: argparse.Namespace) -> int:
    from broker.tools.produce import ProduceOptions, produce
    from broker.tools.progress import Progress

    tls, problem = _client_checks(args)
    if problem:
        return fail(problem)
    opts = ProduceOptions(args.url, args.destination, count=args.count, size=args.size, body=args.body,
                          persistent=args.persistent, receipts=args.receipts, rate=args.rate,
                          login=args.login, passcode=args.passcode, tls=tls)
    result = _run_async(produce(opts, Progress("produce", args.count)))
    return _report(result, args.json)


def run_consume(args: argparse.Namespace) -> int:
    from broker.tools.consume import ConsumeOptions, consume
    from broker.tools.progress import Progress

    tls, problem = _client_checks(args)
    if problem:
        return fail(problem)
    opts = ConsumeOptions(args.url, args.destination, count=args.count, ack=args.ack, timeout=args.timeout,
                          login=args.login, passcode=args.passcode, tls=tls)
    printer = _print_body if args.print else None
    result = _run_async(consume(opts, Progress("consume", args.count), on_message=printer))
    return _report(result, args.json)


def _print_body(message: Any) -> None:
    sys.stdout.write(message.body.decode("utf-8", "replace") + "\n")


def run_status(args: argparse.Namespace) -> int:
    from broker.tools.status import read_status

    try:
        status = read_status(Path(args.data))
    except OSError as exc:
        return fail(f"status: {exc}")
    print(json.dumps(status.fields()) if args.json else status.text(), flush=True)
    # Scripts and health checks ask "is there a master?": say it in the exit code too.
    return ExitCode.OK if status.locked else ExitCode.FAILED


def run_passwd(args: argparse.Namespace) -> int:
    """Print an argon2id hash of a password read from the terminal (twice) or one line of stdin:
    never from the command line, where `ps` and shell history would show it."""
    from config.passwords import MAX_PASSWORD, hash_password

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            return fail("passwd: the two passwords differ")
    else:
        password = sys.stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
    if not password:
        return fail("passwd: empty password")
    if len(password) > MAX_PASSWORD:
        return fail(f"passwd: longer than {MAX_PASSWORD} characters")
    print(hash_password(password), flush=True)
    return ExitCode.OK


def run_fscheck(args: argparse.Namespace) -> int:
    from broker.tools.fscheck import main as fscheck

    return fscheck(args)


BENCHMARKS = {"failover": "benchmarks.failover", "e2e": "benchmarks.e2e", "stores": "benchmarks.stores",
              "fairness": "benchmarks.fairness"}


def run_bench(args: argparse.Namespace) -> int:
    import importlib

    benchmark = importlib.import_module(BENCHMARKS[args.benchmark])
    code: int = benchmark.main(list(args.options))
    return code


# -- the parser ------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> int:
    from broker.tools.produce import MAX_SIZE

    value = _non_negative(text, int)
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SIZE} bytes")
    return value


def _seconds(text: str) -> float:
    return _non_negative(text, float)


def _rate(text: str) -> float:
    value = _non_negative(text, float)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _non_negative(text: str, kind: type[T]) -> T:
    try:
        value = kind(text)  # type: ignore[call-arg]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value in (float("inf"),):  # type: ignore[operator]
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="BatonMQ: a STOMP broker with shared-directory "
                                     "master/slave failover, and tools to drive it.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="stderr log level (default info)")
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_start(commands)
    _add_produce(commands)
    _add_consume(commands)
    _add_status(commands)
    _add_fscheck(commands)
    _add_passwd(commands)
    add_admin(commands, _subparser)
    _add_bench(commands)
    return parser


_CLIENT_CODES = ("exit codes: 0 done as asked; 1 not done (the broker's ERROR, no broker reachable, a "
                 "timeout: the summary's error says which); 2 bad arguments; 130 interrupted by Ctrl-C (the "
                 "summary still shows what was done)")
EPILOGS = {
    "start": "precedence: flags > BATONMQ_* environment > config file > defaults. exit codes: 0 stopped "
             "after SIGTERM/SIGINT; 1 unexpected error; 2 invalid configuration, or a port or the data "
             "directory unusable (checked before the lock); 3 lock lost; 4 the store refused to open; "
             "5 lock timeout; 6 a connector could not be bound on becoming master (lock released); "
             "130 a second signal",
    "produce": _CLIENT_CODES,
    "consume": _CLIENT_CODES.replace("done as asked", "done as asked (--count messages, or the timeout "
                                     "without --count)"),
    "status": "exit codes: 0 a master holds the lock; 1 no master; 2 bad arguments",
}


def _subparser(commands: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text,
                                                       epilog=EPILOGS.get(name))
    # Also accepted after the command: `batonmq start --log-level debug`.
    sub.add_argument("--log-level", default=argparse.SUPPRESS, choices=["debug", "info", "warning", "error"],
                     help="stderr log level (default info)")
    return sub


def _add_start(commands: Any) -> None:
    p = _subparser(commands, "start", "run a broker in the foreground (master, or a slave awaiting the lock)")
    p.set_defaults(run=run_start)
    # No type= or choices= here: the config model validates, so a bad value is one ConfigError line
    # naming the setting, the same whether it came from a flag, the environment or the file.
    p.add_argument("--config", metavar="FILE.toml|FILE.xml", help="config file (default $BATONMQ_CONFIG)")
    p.add_argument("--name", metavar="N", help="broker name (default: host name)")
    p.add_argument("--data", metavar="DIR", help="shared data directory (default ./data)")
    p.add_argument("--store", metavar="journal|leveldb|appendlog", help="store type (default journal)")
    p.add_argument("--store-usage-limit", metavar="SIZE", help="bytes the store may occupy, e.g. 100gb "
                   "(default: 100 GiB or 90%% of the free disk, whichever is smaller)")
    p.add_argument("--store-usage-timeout", metavar="S", help="seconds a persistent SEND waits at the "
                   "limit before its ERROR (default 30; 0 refuses at once)")
    p.add_argument("--cursor-window", metavar="SIZE", help="bytes of each queue's persistent messages kept "
                   "in memory, the rest read back from the store as it drains, e.g. 64kb (default 4 MiB)")
    p.add_argument("--connector", action="append", metavar="tcp://HOST:PORT",
                   help="STOMP connector (tcp://, ssl://; ?maximumConnections=N...); repeat for several "
                        "(default tcp://0.0.0.0:61616)")
    p.add_argument("--metrics-port", metavar="P",
                   help="serve /metrics and /healthz on this port (default: not served)")
    p.add_argument("--metrics-host", metavar="HOST", help="address /metrics binds (default 127.0.0.1)")
    p.add_argument("--no-metrics-destination-names", dest="metrics_destination_names", action="store_const",
                   const=False, help="sum destination series into one, naming no destination (default: "
                   "one series per destination)")
    p.add_argument("--admin-port", metavar="P",
                   help="serve the admin API and web console on this port (default: not served)")
    p.add_argument("--admin-host", metavar="HOST", help="address the admin API binds (default 127.0.0.1)")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="PEM certificate (chain) of the ssl:// connectors (default: none)")
    p.add_argument("--tls-key", metavar="FILE", help="its unencrypted PEM key (default: in --tls-cert)")
    p.add_argument("--tls-ca", metavar="FILE",
                   help="PEM CA bundle that client certificates must chain to (default: none)")
    p.add_argument("--tls-client-auth", metavar="none|optional|required",
                   help="ask ssl:// clients for a certificate (default none)")
    p.add_argument("--lock-acquire-interval", metavar="S",
                   help="slave lock retry interval, seconds (default 0.2)")
    p.add_argument("--lock-keepalive-period", metavar="S",
                   help="master lock re-check period, seconds (default 0.5)")
    p.add_argument("--lock-timeout", metavar="S", help="a master whose lock checks all failed or hung this "
                   "long stops (default 5, or ten keep-alive periods if longer)")
    p.add_argument("--on-lock-lost", metavar="exit|slave",
                   help="what a master does when it loses the lock (default exit)")
    p.add_argument("--memory-budget", metavar="SIZE", help="memory for messages, frames, transactions "
                   "and buffers together, e.g. 512mb (default 20%% of RAM, 64 MiB to 4 GiB)")
    p.add_argument("--connection-memory-limit", metavar="SIZE",
                   help="one connection's frames and transactions (default 32mb)")
    p.add_argument("--producer-flow-control-timeout", metavar="S", help="seconds a producer waits "
                   "for memory before an ERROR naming the limit; 0 = at once (default 10)")
    p.add_argument("--non-persistent", metavar="flow-control|spill", help="non-persistent messages a "
                   "queue has no memory for: hold their producer (default) or spill them to <data>/tmp/")
    p.add_argument("--temp-usage", metavar="SIZE", help="bytes the temporary store may occupy, e.g. 10gb "
                   "(default the smaller of 50 GiB and half the free space)")


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True,
                   help="tcp://HOST:PORT, ssl://HOST:PORT or failover:(tcp://...,ssl://...)?options")
    p.add_argument("--destination", required=True, metavar="/queue/X", help="/queue/NAME or /topic/NAME")
    p.add_argument("--login", help="STOMP login")
    p.add_argument("--passcode", help="STOMP passcode")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--tls-ca", metavar="FILE", help="ssl:// brokers: PEM CAs to trust (default: system CAs)")
    p.add_argument("--tls-cert", metavar="FILE", help="ssl:// brokers: PEM client certificate, if asked for")
    p.add_argument("--tls-key", metavar="FILE", help="its PEM private key (default: in --tls-cert)")


def _add_produce(commands: Any) -> None:
    p = _subparser(commands, "produce", "send messages and report how many were receipted")
    p.set_defaults(run=run_produce)
    _add_client_options(p)
    p.add_argument("--count", type=_positive_int, default=1, metavar="N", help="messages to send (default 1)")
    p.add_argument("--size", type=_size, metavar="BYTES", help="pad or cut each body to exactly BYTES")
    p.add_argument("--body", metavar="'text {seq}'",
                   help="body template; {seq} becomes 1, 2, ... (default 'message {seq}')")
    p.add_argument("--persistent", action="store_true", help="persistent:true (stored durably)")
    p.add_argument("--receipts", action="store_true", help="wait for each message's RECEIPT")
    p.add_argument("--rate", type=_rate, metavar="N", help="send at most N messages per second")


def _add_consume(commands: Any) -> None:
    p = _subparser(commands, "consume", "receive messages and report counts, redeliveries and duplicates")
    p.set_defaults(run=run_consume)
    _add_client_options(p)
    p.add_argument("--count", type=_positive_int, metavar="N", help="stop after N messages")
    p.add_argument("--ack", default="auto", choices=["auto", "client", "client-individual"],
                   help="acknowledgement mode (default auto)")
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="S",
                   help="stop after S seconds without a message (default 10; 0 = wait for ever)")
    p.add_argument("--print", action="store_true", help="print each body on stdout")


def _add_status(commands: Any) -> None:
    p = _subparser(commands, "status", "show who holds the lock of a data directory (reads only)")
    p.set_defaults(run=run_status)
    p.add_argument("--data", required=True, metavar="DIR", help="the shared data directory")
    p.add_argument("--json", action="store_true", help="print as one JSON object")


def _add_fscheck(commands: Any) -> None:
    p = _subparser(commands, "fscheck", "check that a directory's file system locks safely for master/slave")
    p.set_defaults(run=run_fscheck)
    p.add_argument("dir", metavar="DIR", help="the shared data directory (its .batonmq-fscheck/ is scratch)")
    p.add_argument("--peer", action="store_true", help="also test across two hosts: run it on both at once")
    p.add_argument("--wait-for-peer", type=_seconds, default=120.0, metavar="S",
                   help="how long to wait for the other host's instance (default 120)")
    p.add_argument("--release-bound", type=_seconds, default=10.0, metavar="S",
                   help="how soon a SIGKILLed holder's lock must be free (default 10)")
    p.add_argument("--json", action="store_true", help="print as one JSON object")
    # fscheck's own tests: the killed holder's lock lives on in a forked child for S seconds.
    p.add_argument("--simulate-stuck-holder", type=_seconds, default=0.0, help=argparse.SUPPRESS)


def _add_passwd(commands: Any) -> None:
    p = _subparser(commands, "passwd", "print an argon2id password hash for [authentication] users or a "
                   "users.properties file (reads the password from the terminal or stdin)")
    p.set_defaults(run=run_passwd)


def _add_bench(commands: Any) -> None:
    p = _subparser(commands, "bench", "run a benchmark (options after the name: see `batonmq bench NAME -h`)")
    p.set_defaults(run=run_bench)
    p.add_argument("benchmark", choices=sorted(BENCHMARKS), help="failover, e2e, stores or fairness")
    p.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark")
