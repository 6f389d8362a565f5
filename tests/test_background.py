"""The background-task helper and the runtime's start/stop order, without a server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ump_llm_connections.background import BackgroundTask, periodic
from ump_llm_connections.config import Settings
from ump_llm_connections.runtime import Runtime, Step


async def test_periodic_survives_failures_and_stops() -> None:
    calls: list[int] = []
    four = asyncio.Event()

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) == 4:
            four.set()
        if len(calls) % 2:
            raise RuntimeError("one bad round")

    task = periodic("flaky work", work, 0.001, first_now=True)
    task.start()
    await asyncio.wait_for(four.wait(), 5)
    assert task.running
    await task.stop()
    assert not task.running
    settled = len(calls)
    await asyncio.sleep(0.01)
    assert len(calls) == settled  # stopped means no more rounds


async def test_periodic_logs_expected_failures_as_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[None] = []
    third = asyncio.Event()

    async def work() -> None:
        rounds.append(None)
        if len(rounds) == 1:
            raise OSError("database away")
        if len(rounds) == 2:
            raise KeyError("surprise")
        third.set()  # both failures were logged before this round began

    task = periodic("refresh", work, 0.001, first_now=True, expected=(OSError,))
    with caplog.at_level(logging.WARNING, logger="ump_llm_connections.background"):
        task.start()
        await asyncio.wait_for(third.wait(), 5)
        await task.stop()
    first, second = caplog.records[:2]
    assert (first.levelname, first.getMessage()) == ("WARNING", "refresh failed: database away")
    assert second.levelname == "ERROR" and second.exc_info is not None


async def test_periodic_waits_an_interval_before_the_first_round() -> None:
    calls: list[None] = []

    async def work() -> None:
        calls.append(None)

    task = periodic("slow", work, 60.0)
    task.start()
    await asyncio.sleep(0.01)
    await task.stop()
    assert calls == []


async def test_join_waits_for_a_task_that_ends_by_itself() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def run() -> None:
        await stop.wait()
        await asyncio.sleep(0.001)
        finished.append("done")

    task = BackgroundTask("writer", run)
    task.start()
    stop.set()
    await task.join()
    assert finished == ["done"]
    await task.stop()  # stopping a task already ended is a no-op


async def test_runtime_starts_in_order_and_stops_in_reverse(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'ump.db'}"
    settings = Settings(data_dir=tmp_path, database_url=database_url, health_monitor=False)
    runtime = await Runtime.open(settings)
    log: list[str] = []

    def step(name: str, *, fail: bool = False) -> Step:
        async def start() -> None:
            if fail:
                raise RuntimeError(f"{name} cannot start")
            log.append(f"start {name}")

        async def stop() -> None:
            log.append(f"stop {name}")

        return Step(name, start, stop)

    service_close = runtime.steps[0]
    assert [s.name for s in runtime.steps] == [
        "service",
        "tokens",
        "webhooks",
        "events",
        "unfinished tests",
        "limiter",
        "directory",
        "usage recorder",
        "spot reconciler",
        "spend",
        "audit retention",
    ]
    runtime.steps = [service_close, step("a"), step("b"), step("c", fail=True), step("d")]
    with pytest.raises(RuntimeError, match="c cannot start"):
        await runtime.start()
    assert log == ["start a", "start b", "stop b", "stop a"]
    assert runtime.service.http.closed  # the first step's stop closed the service
