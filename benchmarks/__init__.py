"""Benchmarks: throughput, latency and failover figures, run by `make bench`; never timed unit tests."""
