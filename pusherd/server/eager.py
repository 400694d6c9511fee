"""Run a coroutine at once, outside any task, when it is known not to wait.

With the in-memory broker nothing a session does ever waits, yet each subscribe,
unsubscribe and disconnect would cost an ``asyncio.Task`` (creation, scheduling, one
more loop turn). ``start_eagerly`` runs the coroutine to completion right away, the
way Python 3.12's eager task factory does. Should it wait after all, it is finished
by a small driver that resumes it when the awaited future completes (no task: code
needing ``asyncio.current_task()`` must not run on this path; the Redis broker always
gets real tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Tasks", "start_eagerly"]

logger = logging.getLogger("pusherd.eager")


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run ``coro`` now; return None if it finished, else a future for its end."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except Exception:  # as a task would: log it, never raise into the caller's callback
        logger.exception("eagerly started coroutine failed")
        return None
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _wait(coro, yielded, done)
    return done


def _step(coro: Coroutine[Any, Any, None], done: asyncio.Future[None]) -> None:
    try:
        yielded = coro.send(None)
    except StopIteration:
        done.set_result(None)
        return
    except Exception as exc:
        logger.exception("eagerly started coroutine failed")
        done.set_exception(exc)
        return
    _wait(coro, yielded, done)


def _wait(coro: Coroutine[Any, Any, None], yielded: Any, done: asyncio.Future[None]) -> None:
    loop = asyncio.get_running_loop()
    if getattr(yielded, "_asyncio_future_blocking", None):
        # An awaited asyncio future: resume once it completes, as Task.__step does.
        yielded._asyncio_future_blocking = False
        yielded.add_done_callback(lambda _: _step(coro, done))
    else:  # a bare yield (asyncio.sleep(0))
        loop.call_soon(_step, coro, done)


class Tasks:
    """The node's background work: ``spawn`` runs a coroutine and keeps it until it ends.

    Args:
        eager: the broker never waits, so coroutines are started at once (no task unless
            one does wait after all).
    """

    def __init__(self, eager: bool) -> None:
        self.eager = eager
        self._pending: set[asyncio.Future[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        future = start_eagerly(coro) if self.eager else asyncio.get_running_loop().create_task(coro)
        if future is not None:
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)

    async def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for what is still running."""
        pending = [f for f in self._pending if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
