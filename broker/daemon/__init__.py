"""The `batonmq` process: `cli` parses the command line, `run` runs one broker in the foreground
(signals, exit codes), `metrics` serves Prometheus `/metrics` and `/healthz` for every role."""
