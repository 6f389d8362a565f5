"""Background tasks with one start/stop: the usage recorder's writer, the gateway directory's
refresh, the health monitor's scheduler, the spend refresh and the event bus's delivery.

``BackgroundTask`` runs one coroutine under a name; ``stop`` cancels it and waits for it to end,
``join`` waits for a loop that ends by itself. ``periodic`` builds the usual loop: call ``work``
every ``interval_s``, log a failure and carry on (one bad round must not end the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["BackgroundTask", "periodic"]

log = logging.getLogger(__name__)


class BackgroundTask:
    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def join(self) -> None:
        """Wait for a task that ends by itself (told to stop some other way)."""
        task, self._task = self._task, None
        if task is not None:
            await task


def periodic(
    name: str,
    work: Callable[[], Awaitable[None]],
    interval_s: float,
    *,
    first_now: bool = False,
    expected: tuple[type[Exception], ...] = (),
) -> BackgroundTask:
    """``work`` every ``interval_s`` (at once, then, if ``first_now``). An ``expected`` failure
    (an operating condition, such as the database being away) is a warning; any other is logged
    with its traceback. Neither ends the loop."""

    async def loop() -> None:
        if not first_now:
            await asyncio.sleep(interval_s)
        while True:
            try:
                await work()
            except expected as exc:
                log.warning("%s failed: %s", name, exc)
            except Exception:
                log.exception("%s failed", name)
            await asyncio.sleep(interval_s)

    return BackgroundTask(name, loop)
