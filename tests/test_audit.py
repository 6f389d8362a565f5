"""The audit log: the store (filters, paging, pruning in batches) on both backends, the service's
guards (field names only; a failed write logs the row and does not raise), ``GET /api/audit``
and the retention step of a running server.

Admin-only refusal (403 for a member token) is tested with the tokens (see the access tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import insert

from tests.conftest import Database, Server, make_database, start_server
from ump_llm_connections.audit import AuditLog
from ump_llm_connections.clock import utcnow
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import (
    AuditAction,
    AuditFilters,
    AuditOutcome,
    AuditTarget,
    TargetType,
    field_names,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal, Role
from ump_llm_connections.store import migrate
from ump_llm_connections.store.audit import AUDIT, PRUNE_BATCH, AuditRecord, AuditStore
from ump_llm_connections.store.engine import create_engine, session_factory

T = TypeVar("T")
Use = Callable[[AuditStore], Awaitable[T]]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = uuid.uuid4()


def with_store(url: str, use: Use[T], *, migrated: bool = True) -> T:
    async def go() -> T:
        engine = create_engine(url)
        try:
            if migrated:
                await migrate.upgrade(engine)
            return await use(AuditStore(session_factory(engine)))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def record(
    action: str = "connection.update",
    *,
    at: datetime = NOW,
    token_id: uuid.UUID | None = None,
    target: tuple[str, str] | None = ("connection", "c1"),
    outcome: str = "ok",
) -> AuditRecord:
    return AuditRecord(
        created_at=at,
        token_id=token_id,
        token_name="ci" if token_id else "local",
        client="127.0.0.1",
        action=action,
        target_type=target[0] if target else None,
        target_id=target[1] if target else None,
        target_name=f"name of {target[1]}" if target else None,
        fields=["model_name"],
        outcome=outcome,
    )


SAMPLE = [
    record("connection.create", at=NOW - timedelta(hours=5), target=("connection", "c1")),
    record("connection.update", at=NOW - timedelta(hours=4), token_id=TOKEN),
    record("connection.key_change", at=NOW - timedelta(hours=3), token_id=TOKEN),
    record("pool.create", at=NOW - timedelta(hours=2), target=("pool", "p1")),
    record("auth.failure", at=NOW - timedelta(hours=1), target=None, outcome="denied"),
    record("connection.delete", at=NOW, target=("connection", "c2")),
]


def test_store_filters_and_pages_newest_first(fresh_database: Database) -> None:
    async def use(store: AuditStore) -> dict[str, Any]:
        for row in SAMPLE:
            await store.append(row)

        async def actions(filters: AuditFilters, **page: int) -> tuple[list[str], int]:
            rows, total = await store.find(
                filters, limit=page.get("limit", 50), offset=page.get("offset", 0)
            )
            return [r.action for r in rows], total

        return {
            "all": await actions(AuditFilters()),
            "page": await actions(AuditFilters(), limit=2, offset=1),
            "exact": await actions(AuditFilters(action="connection.update")),
            "prefix": await actions(AuditFilters(action="connection.")),
            "token": await actions(AuditFilters(token_id=TOKEN)),
            "type": await actions(AuditFilters(target_type="pool")),
            "target": await actions(AuditFilters(target_id="c2")),
            "outcome": await actions(AuditFilters(outcome=AuditOutcome.denied)),
            "window": await actions(
                AuditFilters(since=NOW - timedelta(hours=4), until=NOW - timedelta(hours=2))
            ),
            "zone": await actions(  # 14:00+02:00 is 12:00 UTC: inclusive
                AuditFilters(since=datetime.fromisoformat("2026-06-01T14:00:00+02:00"))
            ),
            "row": (await store.find(AuditFilters(target_id="c2"), limit=1, offset=0))[0][0],
        }

    found = with_store(fresh_database.url, use)
    newest_first = [r.action for r in reversed(SAMPLE)]
    assert found["all"] == (newest_first, 6)
    assert found["page"] == (newest_first[1:3], 6)
    assert found["exact"] == (["connection.update"], 1)
    assert found["prefix"] == (
        ["connection.delete", "connection.key_change", "connection.update", "connection.create"],
        4,
    )
    assert found["token"] == (["connection.key_change", "connection.update"], 2)
    assert found["type"] == (["pool.create"], 1)
    assert found["target"] == (["connection.delete"], 1)
    assert found["outcome"] == (["auth.failure"], 1)
    assert found["window"] == (["connection.key_change", "connection.update"], 2)
    assert found["zone"] == (["connection.delete"], 1)
    row = found["row"]
    assert (row.token_name, row.client, row.target_name) == ("local", "127.0.0.1", "name of c2")
    assert row.fields == ["model_name"] and row.outcome == "ok" and row.token_id is None


def test_action_prefix_is_literal(fresh_database: Database) -> None:
    """``_`` is a LIKE wildcard: a prefix matches only itself."""

    async def use(store: AuditStore) -> list[str]:
        for action in ("key_x.rotate", "keyxx.rotate", "key.rotate"):
            await store.append(record(action))
        rows, _ = await store.find(AuditFilters(action="key_x."), limit=10, offset=0)
        return [r.action for r in rows]

    assert with_store(fresh_database.url, use) == ["key_x.rotate"]


def test_prune_deletes_old_rows_in_batches(fresh_database: Database) -> None:
    old = PRUNE_BATCH * 2 + 5
    cutoff = NOW - timedelta(days=30)

    async def seed() -> None:  # one executemany: much faster than as many appends
        engine = create_engine(fresh_database.url)
        try:
            await migrate.upgrade(engine)
            rows = [as_values(record(at=cutoff - timedelta(seconds=i + 1))) for i in range(old)]
            async with engine.begin() as connection:
                await connection.execute(insert(AUDIT), rows)
        finally:
            await engine.dispose()

    async def use(store: AuditStore) -> tuple[int, int, list[datetime]]:
        await store.append(record(at=cutoff))  # exactly at the cutoff: kept
        await store.append(record(at=NOW))
        pruned = await store.prune(cutoff)
        again = await store.prune(cutoff)
        kept, _ = await store.find(AuditFilters(), limit=10, offset=0)
        return pruned, again, [r.created_at.replace(tzinfo=UTC) for r in kept]

    asyncio.run(seed())
    pruned, again, kept = with_store(fresh_database.url, use)
    assert (pruned, again) == (old, 0)
    assert kept == [NOW, cutoff]


def as_values(row: AuditRecord) -> dict[str, Any]:
    return {name: getattr(row, name) for name in AuditRecord.__slots__}


def test_field_names_keep_names_and_drop_values() -> None:
    given = [
        "model_name",
        "api_key",
        "base_url",
        "api_key",  # repeated: once
        "sk-proj-4f9a8b7c6d5e",  # a value passed by mistake
        "ump_0123456789ab_Zm9vYmFyYmF6cXV4",
        "3f9a0c1d2e4b5a6978",
        "abcdefghijklmnopqrstuvwxyz",  # a word longer than any field's
        "Authorization",
        "extra headers",
        "",
    ]
    assert field_names(given) == (["api_key", "base_url", "model_name"], 7)
    assert field_names(f"f{i}" for i in range(70)) == (sorted(f"f{i}" for i in range(70))[:64], 6)


def test_filters_in_utc() -> None:
    naive = AuditFilters(since=NOW.replace(tzinfo=None))
    assert naive.since == NOW  # a time without a zone is UTC
    assert AuditFilters(action="connection.").action_prefix == "connection."
    assert AuditFilters(action="connection.update").action_prefix is None
    early = datetime.fromisoformat("0001-01-01T00:00:00+01:00")
    late = datetime.fromisoformat("9999-12-31T23:59:59-01:00")
    assert AuditFilters(since=early, until=late) == AuditFilters(
        since=datetime.min.replace(tzinfo=UTC), until=datetime.max.replace(tzinfo=UTC)
    )


def test_retention_setting_bounds() -> None:
    assert Settings().audit_retention_days == 365
    for bad in (0, 36_501):
        with pytest.raises(ValidationError):
            Settings(audit_retention_days=bad)


def test_service_records_who_what_and_field_names(fresh_database: Database) -> None:
    member = Principal(token_id=TOKEN, name="ci bot", role=Role.member, team="ml")

    async def use(store: AuditStore) -> list[Any]:
        audit = AuditLog(store, retention=timedelta(days=1))
        await audit.record(
            member,
            "10.0.0.7",
            AuditAction.connection_update,
            target=AuditTarget(TargetType.connection, TOKEN, "x" * 300),
            fields={"api_key", "sk-live-0123456789abcdef", "timeout"},
        )
        await audit.record(OPEN_ACCESS, None, AuditAction.auth_failure, outcome=AuditOutcome.denied)
        await store.append(record(at=utcnow() - timedelta(days=2)))
        await audit.prune()
        page = await audit.find(AuditFilters(), limit=10, offset=0)
        return list(page.items)

    newest, oldest = with_store(fresh_database.url, use)
    assert newest.action == "auth.failure" and newest.outcome == "denied"
    assert (newest.token_id, newest.token_name, newest.client) == (None, "local", None)
    assert (newest.target_type, newest.target_id, newest.fields) == (None, None, [])
    assert (oldest.token_id, oldest.token_name, oldest.client) == (TOKEN, "ci bot", "10.0.0.7")
    assert (oldest.target_type, oldest.target_id) == ("connection", str(TOKEN))
    assert oldest.target_name == "x" * 200  # cut to the column
    assert oldest.fields == ["api_key", "timeout"]  # the value given as a name is gone


def test_a_failed_write_is_logged_not_raised(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async def use(store: AuditStore) -> None:  # no migrations: there is no table
        audit = AuditLog(store, retention=timedelta(days=1))
        await audit.record(
            OPEN_ACCESS,
            "127.0.0.1",
            AuditAction.connection_delete,
            target=AuditTarget(TargetType.connection, "c9", "prod"),
        )

    with caplog.at_level(logging.ERROR, logger="ump_llm_connections.audit"):
        with_store(fresh_database.url, use, migrated=False)
    assert "audit row not stored" in caplog.text
    for part in ("connection.delete", "c9", "prod", "local", "127.0.0.1"):
        assert part in caplog.text


def store_rows(server: Server, rows: list[AuditRecord]) -> None:
    """Append through the store to the server's own database (the server only reads it)."""

    async def use(store: AuditStore) -> None:
        for row in rows:
            await store.append(row)

    with_store(server.db.url, use, migrated=False)


def audit_page(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/audit", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_api_lists_filters_and_pages(server: Server, api: httpx.Client) -> None:
    store_rows(server, SAMPLE)
    page = audit_page(api)
    assert (page["total"], page["limit"], page["offset"]) == (6, 50, 0)
    first = page["items"][0]
    assert set(first) == {
        "id",
        "created_at",
        "token_id",
        "token_name",
        "client",
        "action",
        "target_type",
        "target_id",
        "target_name",
        "fields",
        "outcome",
    }
    assert first["action"] == "connection.delete" and first["created_at"].startswith("2026-06-01")
    assert first["fields"] == ["model_name"]

    def actions(**params: Any) -> list[str]:
        return [item["action"] for item in audit_page(api, **params)["items"]]

    assert actions(action="connection.", token_id=str(TOKEN)) == [
        "connection.key_change",
        "connection.update",
    ]
    assert actions(target_type="pool") == ["pool.create"]
    assert actions(target_id="c2") == ["connection.delete"]
    assert actions(outcome="denied") == ["auth.failure"]
    assert actions(since="2026-06-01T10:00:00Z", until="2026-06-01T12:00:00Z") == [
        "auth.failure",
        "pool.create",
    ]
    paged = audit_page(api, limit=2, offset=4)
    assert [i["action"] for i in paged["items"]] == ["connection.update", "connection.create"]
    assert (paged["total"], paged["limit"], paged["offset"]) == (6, 2, 4)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"action": "Connection.Update"}, "action"),
        ({"action": "connection..update"}, "action"),
        ({"token_id": "not-a-uuid"}, "token_id"),
        ({"target_type": "planet"}, "target_type"),
        ({"target_id": "x" * 201}, "target_id"),
        ({"outcome": "maybe"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"until": "0.5"}, "until"),
        ({"until": "1717243200"}, "until"),
        ({"actor": "local"}, "actor"),
    ],
)
def test_api_refuses_bad_queries_naming_the_field(
    api: httpx.Client, params: dict[str, Any], field: str
) -> None:
    response = api.get("/api/audit", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error" and error["field"] == field, error


def test_api_bounds(server: Server, api: httpx.Client) -> None:
    store_rows(server, SAMPLE[:2])
    assert audit_page(api, limit=1)["limit"] == 1
    assert audit_page(api, limit=500)["total"] == 2
    ends = {"since": "0001-01-01T00:00:00+01:00", "until": "9999-12-31T23:59:59-01:00"}
    assert audit_page(api, **ends)["total"] == 2  # the ends of time, past UTC's range
    empty = audit_page(api, since="2026-06-02T00:00:00Z", until="2026-06-01T00:00:00Z")
    assert empty == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_server_prunes_past_the_retention_setting(tmp_path: Path) -> None:
    """The runtime's retention step, on SQLite (the pruning is tested on both backends above)."""
    database = next(make_database("sqlite", tmp_path))

    async def seed(store: AuditStore) -> None:
        await store.append(record("pool.delete", at=utcnow() - timedelta(days=3)))
        await store.append(record("pool.create", at=utcnow()))

    with_store(database.url, seed)
    server = start_server(
        database, tmp_path / "data", UMP_AUDIT_RETENTION_DAYS="2", UMP_HEALTH_MONITOR="false"
    )
    try:
        with server.client() as client:
            deadline = time.monotonic() + 10
            while (page := audit_page(client))["total"] != 1:
                assert time.monotonic() < deadline, page
                time.sleep(0.05)
        assert page["items"][0]["action"] == "pool.create"
        assert "pruned 1 audit rows older than 2 days" in server.log()
    finally:
        server.stop()
