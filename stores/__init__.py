"""Stores: where persistent messages live, and the shared-directory lock every store takes first.

One async contract (`stores.base.Store`), three implementations chosen by name through
`stores.registry`. Imports only `config`.
"""
