"""Merge concurrent calls for the same key into one (a cache stampede becomes one store request).

When a cache entry expires under load, every request that misses at once would otherwise ask the
store the same question; with ``SingleFlight`` the first starts the call and the others await it.
The call runs as a task of its own and callers await it through ``asyncio.shield``, so a caller
that is cancelled (its client went away) neither cancels the call nor fails the other callers.
An error reaches every caller of that call; the next call after it starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._calls: dict[K, asyncio.Future[V]] = {}

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """``await call()``, shared with every concurrent ``do`` of the same key."""
        future = self._calls.get(key)
        if future is None:
            future = asyncio.ensure_future(call())
            self._calls[key] = future
            future.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(future)

    def forget(self, key: K) -> None:
        """Later callers start a new call (the data changed while one was in flight)."""
        self._calls.pop(key, None)

    def _finished(self, key: K, future: asyncio.Future[V]) -> None:
        if self._calls.get(key) is future:
            del self._calls[key]
        if not future.cancelled():
            future.exception()  # retrieved here too: no warning when every caller went away
