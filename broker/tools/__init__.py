"""Command-line tools built on the client library: `produce`, `consume` and `status`.

Each tool is an async function over plain options that returns a result; `broker.daemon.cli` parses the
arguments, runs the tool and turns the result into a summary line and an exit code.
"""
