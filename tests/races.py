"""Concurrent creates through the real service, released together by a barrier (no sleeps): what
quota tests count to prove a limit cannot be raced."""

import threading

from django.db import close_old_connections

from apps.sandboxes.services.create import sandbox_create


def concurrent_creates(owner, count: int, cleanup_sandbox_ids: list, **create_kwargs) -> list[str]:
    """`count` threads call sandbox_create at once; answers their outcomes, sorted: "created" or
    the error's code (the repr of anything else). Made sandboxes go to `cleanup_sandbox_ids`."""
    outcomes: list[str] = []
    barrier = threading.Barrier(count)

    def create():
        try:
            barrier.wait()
            sandbox = sandbox_create(owner=owner, **create_kwargs)
            cleanup_sandbox_ids.append(sandbox.id)
            outcomes.append("created")
        except Exception as exc:  # recorded and checked by the caller
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return sorted(outcomes)
