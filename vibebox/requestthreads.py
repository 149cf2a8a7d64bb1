"""Django's synchronous request work runs on reused threads, so each keeps its database connection.

Django's ASGI handler enters a fresh `ThreadSensitiveContext` per request: asgiref then starts a
new thread for it, and Django's connections, which are per thread, are opened again for every
request (SQLite's connect and PRAGMAs, a PostgreSQL handshake: CONN_MAX_AGE never took effect). Here
each HTTP request enters a context with an executor taken from a pool of one-thread executors
(asgiref ≥ 3.13 lets the caller own it); Django's own context inside then reuses it.

- Concurrency is as before: a request that finds no idle thread gets a new one, so a slow request
  (a long exec, a download) never holds up others.
- An executor goes back to the pool only once its thread is idle: a view still running after its
  client left (the handler was cancelled) first finishes, the next request never queues behind it.
- At most `idle` threads are kept; one more closes its connections and ends.
"""

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.db import connections


class ThreadPool:
    def __init__(self, *, idle: int):
        self.idle = idle
        self._free: deque[ThreadPoolExecutor] = deque()
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        try:
            return self._free.pop()  # the most recently used: its connection is the freshest
        except IndexError:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        # Runs on the executor's own thread, after whatever the request left queued there.
        def returned(_):
            with self._lock:
                if len(self._free) < self.idle:
                    self._free.append(executor)
                    return
            executor.submit(connections.close_all)
            executor.shutdown(wait=False)

        executor.submit(int).add_done_callback(returned)


class PooledRequestThreads:
    """ASGI middleware for HTTP: the wrapped (Django) app's thread-sensitive work runs on a pooled
    thread of its own for the whole request."""

    def __init__(self, app, *, idle: int = 16):
        self.app = app
        self.pool = ThreadPool(idle=idle)

    async def __call__(self, scope, receive, send):
        executor = self.pool.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.app(scope, receive, send)
        finally:
            self.pool.give_back(executor)
