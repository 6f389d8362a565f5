"""The gateway's failover, without HTTP: real ``Directory``, ``Gateway`` and ``UsageRecorder``
over connections whose adapters are ``providers.fake`` (what a route does when its upstream
fails, and what the usage rows say about it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import ConnectionCreate, ConnectionRead, PoolList
from ump_llm_connections.gateway.core import Gateway, Plan
from ump_llm_connections.gateway.directory import Directory, Route
from ump_llm_connections.gateway.limits import create_limiter
from ump_llm_connections.gateway.spill import SpillFile
from ump_llm_connections.gateway.usage import UsageRecorder
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.fake import Answer, FakeAdapter, scripted
from ump_llm_connections.providers.target import Target
from ump_llm_connections.providers.types import ChatRequest, ChatResponse, Message

REQUEST = ChatRequest(messages=[Message("user", "hi")])
OK = ChatResponse(text="from b", finish_reason="stop")


def connection(name: str) -> ConnectionRead:
    create = ConnectionCreate(name=name, connection_type="openai", model_name="m")
    now = utcnow()
    fields: dict[str, Any] = {
        **create.model_dump(exclude={"api_key"}),
        "id": uuid.uuid4(),
        "has_api_key": False,
        "api_key_mask": None,
        "status": "active",
        "last_error": None,
        "consecutive_failures": 0,
        "deactivated_by_health": False,
        "created_at": now,
        "updated_at": now,
        "last_used_at": None,
        "last_tested_at": None,
    }
    return ConnectionRead.model_validate(fields)


class Connections:
    """A ``ConnectionSource`` over a fixed list."""

    def __init__(self, entries: list[tuple[ConnectionRead, Target]]) -> None:
        self.entries = entries

    def subscribe(self, listener: Callable[[uuid.UUID], Awaitable[None]]) -> None:
        pass

    async def version(self) -> tuple[int, object]:
        return len(self.entries), None

    async def everything(self) -> list[tuple[ConnectionRead, Target]]:
        return self.entries

    async def target(self, ref: str) -> tuple[ConnectionRead, Target]:
        return next(e for e in self.entries if str(e[0].id) == ref)


class NoPools:
    def subscribe(self, listener: Callable[[], Awaitable[None]]) -> None:
        pass

    async def find(self) -> PoolList:
        return PoolList(items=[], total=0)


class Rows:
    """A ``UsageSink`` that keeps what the recorder writes."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def append(
        self,
        rows: list[dict[str, Any]],
        last_used: dict[uuid.UUID, datetime],
        *,
        skip_stored: bool = False,
    ) -> int:
        self.rows.extend(rows)
        return len(rows)


async def _no_sleep(_: float) -> None:
    return None


class World:
    def __init__(self, gateway: Gateway, rows: Rows, adapters: dict[str, FakeAdapter]) -> None:
        self.gateway = gateway
        self.rows = rows
        self.adapters = adapters

    def route(self, name: str) -> Route:
        route = self.gateway.directory.find(name)
        assert route is not None
        return route

    async def usage(self) -> list[tuple[str, bool, str | None]]:
        await self.gateway.recorder.flush()
        names = {str(r.id): r.name for r in self.gateway.directory.routes()}
        return [
            (names[str(r["connection_id"])], r["success"], r["error_kind"]) for r in self.rows.rows
        ]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Answer]], Awaitable[World]]]:
    async with aiohttp.ClientSession() as http:

        async def build(answers: dict[str, Answer]) -> World:
            adapters: dict[str, FakeAdapter] = {}
            entries = []
            for name, answer in answers.items():
                target = Target(api_format="openai", base_url=f"fake://{name}", model="m")
                adapters[target.base_url] = FakeAdapter(
                    target, http, answer=answer, sleep=_no_sleep
                )
                entries.append((connection(name), target))

            def adapter(target: Target, _: aiohttp.ClientSession) -> Adapter:
                return adapters[target.base_url]

            directory = Directory(Connections(entries), NoPools(), http, adapters=adapter)
            await directory.load()
            rows = Rows()
            recorder = UsageRecorder(rows, SpillFile(tmp_path / "spill.jsonl"))
            gateway = Gateway(directory, recorder, create_limiter(None, prefix="t"))
            by_name = {name: adapters[f"fake://{name}"] for name in answers}
            return World(gateway, rows, by_name)

        yield build


async def test_a_retryable_failure_moves_on_to_the_next_connection(world: Any) -> None:
    w = await world(
        {
            "a": scripted(ProviderError(ErrorKind.server_error, "boom", status=500)),
            "b": scripted(OK),
        }
    )
    answer, route = await w.gateway.complete(Plan([w.route("a"), w.route("b")]), REQUEST, "api")
    assert (answer.text, route.name) == ("from b", "b")
    # The first connection was tried once (no retries on a route with another after it).
    assert len(w.adapters["a"].requests) == 1
    assert await w.usage() == [("a", False, "server_error"), ("b", True, None)]


async def test_a_definite_failure_is_not_tried_elsewhere(world: Any) -> None:
    w = await world(
        {"a": scripted(ProviderError(ErrorKind.auth, "bad key", status=401)), "b": scripted(OK)}
    )
    with pytest.raises(ProviderError) as raised:
        await w.gateway.complete(Plan([w.route("a"), w.route("b")]), REQUEST, "api")
    assert raised.value.kind is ErrorKind.auth
    assert w.adapters["b"].requests == []
    assert await w.usage() == [("a", False, "auth")]


async def test_the_last_connection_retries_before_giving_up(world: Any) -> None:
    busy = ProviderError(ErrorKind.rate_limited, "slow down", status=429)
    w = await world({"a": scripted(busy, busy, OK)})  # max_retries defaults to 2
    answer, route = await w.gateway.complete(Plan([w.route("a")]), REQUEST, "api")
    assert (answer.text, route.name) == ("from b", "a")
    assert len(w.adapters["a"].requests) == 3


async def test_a_stream_fails_over_only_before_its_first_chunk(world: Any) -> None:
    def broken(_: ChatRequest) -> ChatResponse:
        raise ProviderError(ErrorKind.unreachable, "refused")

    w = await world({"a": broken, "b": scripted(OK)})
    stream = await w.gateway.open_stream(Plan([w.route("a"), w.route("b")]), REQUEST, "api")
    assert stream.route.name == "b"
    assert stream.first is not None and stream.first.text == "from b"
    assert [chunk async for chunk in stream.rest] == []
    assert await w.usage() == [("a", False, "unreachable"), ("b", True, None)]
