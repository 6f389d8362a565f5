"""``llm_connection_tags`` follows every write to ``llm_connections`` (its triggers), and the tag
filters answered from it give what they gave before, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import httpx

from tests.conftest import Server, free_port
from ump_llm_connections.domain import name_key
from ump_llm_connections.store.tables import Base

COPIED = (
    "name",
    "connection_type",
    "use_in_livekit",
    "use_in_mcp",
    "use_in_automation",
    "is_active",
    "status",
)
Row = tuple[Any, ...]


def _norm(connection_id: Any, *copies: Any) -> Row:
    flags = tuple(bool(v) for v in copies[2:6])  # SQLite answers 0 and 1
    return (str(uuid.UUID(str(connection_id))), copies[0], copies[1], *flags, copies[6])


def side(server: Server) -> set[Row]:
    columns = ", ".join(COPIED)
    rows = server.db.query(f"SELECT tag, connection_id, {columns} FROM llm_connection_tags")
    found = {(tag, *_norm(*rest)) for tag, *rest in rows}
    assert len(found) == len(rows)
    return found


def derived(server: Server) -> set[Row]:
    """What the side table must hold: each string tag of each connection, once."""
    rows = server.db.query(f"SELECT tags, id, {', '.join(COPIED)} FROM llm_connections")
    return {
        (tag, *_norm(*rest))
        for tags, *rest in rows
        for tag in (json.loads(tags) if isinstance(tags, str) else tags)
        if isinstance(tag, str)
    }


def tagged(server: Server) -> set[tuple[str, str]]:
    """(tag, name) pairs, after checking the whole side table against the connections."""
    rows = side(server)
    assert rows == derived(server)
    return {(tag, name) for tag, _, name, *_ in rows}


def row_of(server: Server, name: str) -> dict[str, Any]:
    found = [r for r in side(server) if r[2] == name]
    assert found, name
    return dict(zip(COPIED, found[0][2:], strict=True))


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"connection_type": "local", "model_name": "m", **fields}
    response = api.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def raw_insert(server: Server, source: str, name: str, tags: str) -> None:
    """A connection written by SQL alone (as seeds and scripts do), copied from ``source``."""
    new_id = uuid.uuid4()
    sqlite = server.db.backend == "sqlite"
    values = {
        "id": f"'{new_id.hex}'" if sqlite else f"'{new_id}'::uuid",
        "name": f"'{name}'",
        "tags": f"'{tags}'" if sqlite else f"'{tags}'::jsonb",
    }
    columns = list(Base.metadata.tables["llm_connections"].columns.keys())
    select = ", ".join(values.get(c, c) for c in columns)
    server.db.execute(
        f"INSERT INTO llm_connections ({', '.join(columns)}) "
        f"SELECT {select} FROM llm_connections WHERE name = '{source}'"
    )
    key = name_key(name)
    server.db.execute(
        f"INSERT INTO llm_names (name_key, connection_id) VALUES ('{key}', {values['id']})"
    )


def test_the_side_table_follows_every_write(api: httpx.Client, server: Server) -> None:
    a = create(api, name="a", use_in_livekit=True, tags=["prod", "eu"])
    b = create(
        api,
        name="b",
        connection_type="remote",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=0,
        tags=["dev"],
    )
    create(api, name="c")
    assert tagged(server) == {("prod", "a"), ("eu", "a"), ("dev", "b")}
    assert row_of(server, "a")["use_in_livekit"] is True

    # PATCH: tags replace the rows; a name or a flag updates the copies.
    assert api.patch(f"/api/connections/{a['id']}", json={"tags": ["prod", "gpu"]}).is_success
    assert api.patch(
        f"/api/connections/{b['id']}", json={"name": "b2", "use_in_mcp": True}
    ).is_success
    assert tagged(server) == {("prod", "a"), ("gpu", "a"), ("dev", "b2")}
    assert row_of(server, "b2")["use_in_mcp"] is True
    assert api.patch(f"/api/connections/{a['id']}", json={"use_in_livekit": False}).is_success
    assert row_of(server, "a")["use_in_livekit"] is False

    # Activate and deactivate: is_active and status.
    assert api.post(f"/api/connections/{a['id']}/deactivate").is_success
    assert (row_of(server, "a")["is_active"], row_of(server, "a")["status"]) == (False, "inactive")
    assert api.post(f"/api/connections/{a['id']}/activate").is_success
    assert (row_of(server, "a")["is_active"], row_of(server, "a")["status"]) == (True, "unknown")

    # A health probe's status change (the health store's own UPDATE).
    result = api.post(f"/api/connections/{b['id']}/test").json()
    assert result["status"] == "error", result
    assert row_of(server, "b2")["status"] == "error"

    # Raw SQL: an INSERT (a tag twice), a bulk UPDATE, a DELETE.
    raw_insert(server, "c", "raw", '["raw", "raw", "prod"]')
    assert tagged(server) == {("prod", "a"), ("gpu", "a"), ("dev", "b2"), ("raw", "raw")} | {
        ("prod", "raw")
    }
    server.db.execute("UPDATE llm_connections SET status = 'error', use_in_automation = true")
    assert {r[-1] for r in side(server)} == {"error"}
    assert all(r[6] for r in side(server))  # use_in_automation
    server.db.execute("UPDATE llm_connections SET tags = '[]' WHERE name = 'raw'")
    assert tagged(server) == {("prod", "a"), ("gpu", "a"), ("dev", "b2")}

    # A connection deleted takes its rows with it.
    assert api.delete(f"/api/connections/{a['id']}").status_code == 204
    assert tagged(server) == {("dev", "b2")}
    server.db.execute("DELETE FROM llm_connections")
    assert side(server) == set()


def test_tag_filters_give_what_the_connections_say(api: httpx.Client) -> None:
    """Every combination of tags, a flag, is_active, q and sort, paged: the same connections in
    the same order as filtering the created ones by hand."""
    tags = ["prod", "dev", "eu"]
    made = []
    for i, subset in enumerate(
        itertools.chain.from_iterable(itertools.combinations(tags, n) for n in range(4))
    ):
        for j in range(2):
            made.append(
                create(
                    api,
                    name=f"{'xyz' if j else 'abc'}-{7 - i}",
                    tags=list(subset),
                    use_in_livekit=bool((i + j) % 2),
                    is_active=i % 3 != 0,
                    priority=i % 3,
                )
            )

    def expect(
        want: list[str], livekit: bool | None, active: bool | None, q: str | None, sort: str
    ) -> list[str]:
        rows = [
            c
            for c in made
            if set(want) <= set(c["tags"])
            and (livekit is None or c["use_in_livekit"] == livekit)
            and (active is None or c["is_active"] == active)
            and (q is None or q in c["name"])
        ]
        field = sort.lstrip("-")
        rows.sort(key=lambda c: (c["name"], c["id"]))
        rows.sort(key=lambda c: c[field], reverse=sort.startswith("-"))
        return [c["name"] for c in rows]

    for want, livekit, active, q, sort in itertools.product(
        [["prod"], ["prod", "eu"], ["eu", "dev", "prod"], ["nope"], ["dev", "nope"]],
        [None, True],
        [None, False],
        [None, "xyz"],
        ["name", "-name", "-priority", "status"],
    ):
        params: dict[str, Any] = {"tag": want, "sort": sort, "limit": 3}
        params |= {"use_in_livekit": livekit} if livekit is not None else {}
        params |= {"is_active": active} if active is not None else {}
        params |= {"q": q} if q else {}
        expected = expect(want, livekit, active, q, sort)
        got: list[str] = []
        for offset in range(0, max(len(expected), 1), 3):
            response = api.get("/api/connections", params={**params, "offset": offset})
            assert response.status_code == 200, (params, response.text)
            page = response.json()
            assert page["total"] == len(expected), (params, page)
            got += [c["name"] for c in page["items"]]
        assert got == expected, params
