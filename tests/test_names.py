"""One namespace for the names the gateway resolves: connections and pools, by Unicode case
folding, enforced by the database on both backends, with names that can always be looked up."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import Server
from tests.test_routing import HELLO, connection
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import RESERVED_NAMES, name_key

LOCAL = {"connection_type": "local", "model_name": "m"}


def fullwidth(text: str) -> str:
    """``Prod`` in fullwidth letters (U+FF01 onwards), which NFKC folds back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    with (
        FakeOpenAI(api_key=None) as a,
        FakeOpenAI(api_key=None) as b,
        FakeOpenAI(api_key=None) as c,
    ):
        yield a, b, c


def _create(api: httpx.Client, name: str, **fields: Any) -> httpx.Response:
    return api.post("/api/connections", json={"name": name, **LOCAL, **fields})


def _refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == "name", response.text


def _chat(api: httpx.Client, model: str) -> None:
    response = api.post("/v1/chat/completions", json={"model": model, **HELLO})
    assert response.status_code == 200, response.text


def test_a_name_is_taken_whatever_its_owner(
    api: httpx.Client, fakes: tuple[FakeOpenAI, ...]
) -> None:
    """The fault: `Prod` (no owner) and `PROD` (bob's) both existed, and a call for `Prod`
    went — prompt and all — to bob's upstream."""
    connection(api, "Prod", fakes[0])
    _refused(_create(api, "PROD", owner="bob", base_url=f"{fakes[1].url}/v1"), 409)
    _chat(api, "Prod")
    assert (len(fakes[0].requests), len(fakes[1].requests)) == (1, 0)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Модель", "модель"),  # SQLite's lower() knows only ASCII
        ("Straße", "STRASSE"),  # full case folding, not just lower()
        (fullwidth("Prod"), "prod"),  # fullwidth letters: NFKC
        ("ǅemal", "džemal"),  # titlecase digraph
    ],
)
def test_names_compare_by_unicode_case_folding(api: httpx.Client, first: str, second: str) -> None:
    created = _create(api, first).json()
    _refused(_create(api, second), 409)
    pool = {"name": second, "members": [{"connection_id": created["id"]}]}
    _refused(api.post("/api/pools", json=pool), 409)
    assert api.get(f"/api/connections/{second}").json()["id"] == created["id"]


def test_lookups_by_name_find_the_right_one_through_the_gateway(
    api: httpx.Client, fakes: tuple[FakeOpenAI, ...]
) -> None:
    connection(api, "модель", fakes[0])
    other = connection(api, "Модель-2", fakes[1])
    connection(api, "Llama 3 · 日本語 (q4) #1 ?x=1", fakes[2])
    for model in ("МОДЕЛЬ", " модель-2 ", other, "LLAMA 3 · 日本語 (Q4) #1 ?X=1"):
        _chat(api, model)
    assert [len(fake.requests) for fake in fakes] == [1, 2, 1]
    found = api.get(f"/api/connections/{quote(' llama 3 · 日本語 (Q4) #1 ?X=1 ', safe='')}")
    assert found.json()["name"] == "Llama 3 · 日本語 (q4) #1 ?x=1"


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "nul\x00here",
        "tab\there",
        "line\nbreak",
        "zero\u200bwidth",  # a format character: invisible
        "bidi\u202eoverride",
        "summary",
        "Test",
        "health-checks",
        fullwidth("summary"),
        ".",
        "..",
        "3f1b0c2e-5a4d-4f7e-9c1a-2b3c4d5e6f70",
        "{3F1B0C2E-5A4D-4F7E-9C1A-2B3C4D5E6F70}",
        "urn:uuid:3f1b0c2e-5a4d-4f7e-9c1a-2b3c4d5e6f70",
        "3f1b0c2e5a4d4f7e9c1a2b3c4d5e6f70",
        fullwidth("abcdef1234567890" * 2),  # a UUID once folded
        "   ",
        "x" * 201,
        "\ufdfa" * 30,  # 30 characters, 540 once NFKC expands each ligature
    ],
)
def test_names_that_could_not_be_looked_up_are_refused(api: httpx.Client, name: str) -> None:
    _refused(_create(api, name), 422)
    member = _create(api, "member").json()["id"]
    _refused(
        api.post("/api/pools", json={"name": name, "members": [{"connection_id": member}]}), 422
    )
    _refused(api.patch(f"/api/connections/{member}", json={"name": name}), 422)
    assert api.get("/api/connections").json()["total"] == 1
    assert api.get("/api/pools").json()["total"] == 0


def test_a_name_cannot_be_another_connections_id(api: httpx.Client) -> None:
    first = _create(api, "first").json()["id"]
    _refused(_create(api, first), 422)
    _refused(_create(api, first.upper()), 422)
    assert api.get(f"/api/connections/{first}").json()["name"] == "first"


def test_every_literal_route_segment_is_reserved(api: httpx.Client) -> None:
    """A name equal to a word of the API's paths would be shadowed by that route."""
    paths = api.get("/openapi.json").json()["paths"]
    words = {
        segment
        for path in paths
        if path.startswith(("/api/connections/", "/api/pools/"))
        for segment in path.split("/")[3:]
        if segment and not segment.startswith("{")
    }
    assert words and words <= RESERVED_NAMES
    for word in words:
        _refused(_create(api, word), 422)


def test_renames_move_the_name_and_deletes_free_it(api: httpx.Client) -> None:
    a = _create(api, "Alpha").json()["id"]
    b = _create(api, "Beta").json()["id"]
    _refused(api.patch(f"/api/connections/{b}", json={"name": "ALPHA"}), 409)
    assert api.patch(f"/api/connections/{a}", json={"name": "Gamma"}).status_code == 200
    assert api.get("/api/connections/alpha").status_code == 404
    assert api.patch(f"/api/connections/{b}", json={"name": "alpha"}).status_code == 200
    assert api.patch(f"/api/connections/{b}", json={"name": "ALPHA"}).status_code == 200  # itself
    pool = api.post("/api/pools", json={"name": "Beta", "members": [{"connection_id": a}]})
    assert pool.status_code == 201, pool.text
    _refused(api.patch(f"/api/pools/{pool.json()['id']}", json={"name": "gamma"}), 409)
    assert api.patch("/api/pools/beta", json={"name": "Delta"}).status_code == 200
    assert _create(api, "beta").status_code == 201
    assert api.delete("/api/connections/gamma").status_code == 204
    assert _create(api, "GAMMA").status_code == 201
    assert api.delete("/api/pools/delta").status_code == 204
    assert _create(api, "delta").status_code == 201


ROUNDS = 8


async def _race(*calls: Awaitable[httpx.Response]) -> list[httpx.Response]:
    return list(await asyncio.gather(*calls))


def _one_wins(responses: list[httpx.Response]) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] in (200, 201) and statuses[1:] == [409], [r.text for r in responses]
    for loser in responses:
        if loser.status_code == 409:
            assert loser.json()["error"]["field"] == "name"


def test_concurrent_creates_of_one_name_one_wins(api: httpx.Client, server: Server) -> None:
    member = _create(api, "member").json()["id"]

    async def rounds() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            def create(name: str) -> Awaitable[httpx.Response]:
                return client.post("/api/connections", json={"name": name, **LOCAL})

            def create_pool(name: str) -> Awaitable[httpx.Response]:
                body = {"name": name, "members": [{"connection_id": member}]}
                return client.post("/api/pools", json=body)

            for n in range(ROUNDS):
                _one_wins(await _race(create(f"cc-{n}"), create(f"CC-{n}")))
                _one_wins(await _race(create(f"cp-{n}"), create_pool(f"CP-{n}")))
                _one_wins(await _race(create_pool(f"pp-{n}"), create_pool(f"Pp-{n}")))
                _one_wins(await _race(create(f"Ωμέγα-{n}"), create(f"ωμέγα-{n}")))
                renamed = (await create(f"old-{n}")).json()["id"]
                _one_wins(
                    await _race(
                        client.patch(f"/api/connections/{renamed}", json={"name": f"rr-{n}"}),
                        create(f"RR-{n}"),
                    )
                )

    asyncio.run(rounds())
    keys = [name_key(c["name"]) for c in api.get("/api/connections?limit=1000").json()["items"]]
    keys += [name_key(p["name"]) for p in api.get("/api/pools").json()["items"]]
    assert len(keys) == len(set(keys))
    table = server.db.query("SELECT count(*) FROM llm_names")
    assert table == [(len(keys),)]


def test_the_database_refuses_a_second_holder_of_a_name(api: httpx.Client, server: Server) -> None:
    """The rule lives in the database, not in a SELECT before the INSERT."""
    created = _create(api, "Held").json()
    other = _create(api, "Other").json()
    hex_id = uuid.UUID(other["id"]).hex if server.db.backend == "sqlite" else other["id"]
    server.db.execute("DELETE FROM llm_names WHERE name_key = 'other'")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        server.db.execute(
            f"INSERT INTO llm_names (name_key, connection_id) VALUES ('held', '{hex_id}')"
        )
    assert api.get("/api/connections/held").json()["id"] == created["id"]


def test_the_ascii_fast_path_folds_as_unicode_does() -> None:
    """``name_key`` skips normalisation for ASCII: it must give what the full rule gives."""

    def full(text: str) -> str:
        nfkc = unicodedata.normalize("NFKC", text)
        return unicodedata.normalize("NFKC", nfkc.casefold()).strip()

    ascii_text = "".join(chr(c) for c in range(128))
    assert name_key(ascii_text) == full(ascii_text)
    assert name_key(f"  {ascii_text}\t") == full(f"  {ascii_text}\t")
    assert name_key("ǅemal") == name_key("DŽEMAL") == "džemal"
