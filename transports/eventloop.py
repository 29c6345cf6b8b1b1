"""Run a coroutine on uvloop (a declared dependency), or on asyncio's own loop where uvloop is
missing (an odd platform): the one place that chooses the event loop for every command."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
