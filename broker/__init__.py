"""The broker: the only package that wires `stores`, `transports` and `config` together.

- `broker.engine`: the messaging engine (sessions, queues, topics, subscriptions, selectors,
  transactions, delivery). It knows nothing of TCP, of the lock or of the command line.
- `broker.ha`: the master/slave lifecycle around the engine: slave wait, one master term (fence,
  takeover, recovery, keep-alive, watchdog), the hot standby.
- `broker.daemon`: the `batonmq` process: argument parsing, the run loop, signals, metrics.
- `broker.tools`: client command-line tools (`produce`, `consume`, `status`, `fscheck`).

docs/architecture.md draws the packages and follows a message through them.
"""
