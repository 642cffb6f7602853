"""Run one function in several threads at once, for the race tests on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_at_once(fn: Callable[[], Any], times: int) -> list[Any]:
    """Start ``times`` threads that call ``fn`` together (after a barrier); return the results.

    Each thread closes its own database connections. An exception in a thread is re-raised
    here, so a race that crashes fails the test instead of shortening the result list.
    """
    barrier = threading.Barrier(times)
    results: list[Any] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            results.append(fn())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
