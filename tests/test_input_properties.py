"""Property tests: whatever JSON comes in, the answer is a 2xx or a 4xx in the error shape.

hypothesis writes bodies for the connection schema (POST and PATCH ``/api/connections``: every
field with plausible and arbitrary values, unknown fields, NULs, lone surrogates, control
characters, huge numbers, nested junk) and for the gateway's request parser (``POST
/v1/chat/completions``, against a fake upstream of every wire format). The real server runs
on both databases; the ``api`` fixture then checks its log holds no 500 and no traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Server
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import ConnectionFields

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
JSON_HEADERS = {"Content-Type": "application/json"}

# Text with what breaks servers: NUL, other control characters, lone surrogates, non-ASCII.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\r", "\n", "\x01", "\x7f", "\x85", "\ud800", "\udfff", "/"]),
    ),
    max_size=40,
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=12,
)

TYPES = ["local", "remote", "openai", "anthropic", "google", "groq", "together", "azure"]
LOCAL_URL = "http://127.0.0.1:9/v1"  # nothing listens; and nothing leaves this machine
# Values that pass or nearly pass, so that bodies reach the registry and the database too.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": nasty_text.filter(lambda t: t.strip() != ""),
    "connection_type": st.sampled_from(TYPES),
    "base_url": st.one_of(st.just(LOCAL_URL), nasty_text.map(lambda t: LOCAL_URL + t)),
    "model_name": nasty_text,
    "api_format": st.sampled_from(["openai", "anthropic", "google", "ollama"]),
    "api_key": nasty_text,
    "organization_id": nasty_text,
    "api_version": nasty_text,
    "deployment": nasty_text,
    "description": nasty_text,
    "owner": nasty_text,
    "team": nasty_text,
    "extra_headers": st.dictionaries(
        st.one_of(st.sampled_from(["X-Auth-Token", "Host", "TE", "Proxy-A"]), nasty_text),
        nasty_text,
        max_size=3,
    ),
    "tags": st.lists(nasty_text, max_size=5),
    "timeout": numbers,
    "max_retries": numbers,
    "temperature": numbers,
    "max_tokens": numbers,
    "priority": numbers,
    "weight": numbers,
    "rpm_limit": numbers,
    "tpm_limit": numbers,
    "health_interval_s": numbers,
    "monthly_budget": numbers,
}


REQUIRED = ("name", "connection_type", "model_name")


def _field(name: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(name, st.booleans())
    return st.one_of(plausible, json_values)


connection_bodies = st.one_of(
    st.fixed_dictionaries(
        {name: _field(name) for name in REQUIRED},
        optional={
            **{
                name: _field(name) for name in ConnectionFields.model_fields if name not in REQUIRED
            },
            "model": nasty_text,
            "": json_values,
            "status": json_values,
        },
    ),
    st.dictionaries(nasty_text, json_values, max_size=5),
    json_values,
)
patch_bodies = st.one_of(
    st.fixed_dictionaries(
        {}, optional={name: _field(name) for name in [*ConnectionFields.model_fields, "id"]}
    ),
    json_values,
)


def _send(client: httpx.Client, method: str, url: str, body: Any) -> httpx.Response:
    # ASCII escapes, so a lone surrogate goes over the wire as \ud800, as any JSON may carry it.
    content = json.dumps(body).encode()
    return client.request(method, url, content=content, headers=JSON_HEADERS)


def _assert_rest_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        assert set(error) == {"error"}, error
        assert set(error["error"]) == {"type", "message", "field"}, error
        assert error["error"]["message"], error


@EXAMPLES
@given(body=connection_bodies)
def test_any_json_to_create_is_a_2xx_or_a_4xx(api: httpx.Client, body: Any) -> None:
    response = _send(api, "POST", "/api/connections", body)
    _assert_rest_answer(response)
    if response.status_code == 201:
        assert api.delete(f"/api/connections/{response.json()['id']}").status_code == 204


@EXAMPLES
@given(body=patch_bodies)
def test_any_json_to_patch_is_a_2xx_or_a_4xx(api: httpx.Client, body: Any) -> None:
    base = {"name": "Patched", "connection_type": "remote", "base_url": LOCAL_URL}
    created = api.post("/api/connections", json={**base, "model_name": "m"})
    assert created.status_code == 201, created.text
    url = f"/api/connections/{created.json()['id']}"
    _assert_rest_answer(_send(api, "PATCH", url, body))
    assert api.delete(url).status_code == 204  # gone before any health probe is due


FAKES: dict[str, type[FakeUpstream]] = {
    "openai": FakeOpenAI,
    "anthropic": FakeAnthropic,
    "google": FakeGemini,
    "ollama": FakeOllama,
}
PATHS = {"openai": "/v1", "anthropic": "/v1", "google": "/v1beta", "ollama": ""}


@pytest.fixture
def models(api: httpx.Client) -> Iterator[list[str]]:
    """One connection per wire format, each to a fake upstream on 127.0.0.1."""
    with ExitStack() as stack:
        names: list[str] = []
        for api_format, fake_class in FAKES.items():
            fake = stack.enter_context(fake_class(api_key=None))
            name = f"prop-{api_format}"
            body = {
                "name": name,
                "connection_type": "remote",
                "api_format": api_format,
                "base_url": fake.url + PATHS[api_format],
                "model_name": "fake-model",
                "max_retries": 0,
            }
            response = api.post("/api/connections", json=body)
            assert response.status_code == 201, response.text
            names.append(name)
        deadline = time.monotonic() + 10
        while {m["id"] for m in api.get("/v1/models").json()["data"]} != set(names):
            assert time.monotonic() < deadline, "the gateway did not pick the connections up"
            time.sleep(0.02)
        yield names


messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.one_of(
                    st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
                    json_values,
                )
            },
            optional={
                "content": st.one_of(
                    nasty_text,
                    st.lists(
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["text", "image_url"]), "text": json_values}
                        ),
                        max_size=2,
                    ),
                    json_values,
                ),
                "tool_calls": json_values,
                "tool_call_id": json_values,
                "name": json_values,
            },
        ),
        json_values,
    ),
    max_size=3,
)
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"name": st.one_of(nasty_text, json_values)},
                    optional={"description": json_values, "parameters": json_values},
                ),
            ),
        }
    ),
    max_size=2,
)


def chat_bodies(models: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {
                "model": st.one_of(st.sampled_from(models), json_values),
                "messages": st.one_of(messages, json_values),
            },
            optional={
                "stream": st.one_of(st.booleans(), json_values),
                "stream_options": json_values,
                "temperature": st.one_of(numbers, json_values),
                "max_tokens": st.one_of(numbers, json_values),
                "max_completion_tokens": json_values,
                "n": json_values,
                "stop": json_values,
                "tools": st.one_of(tools, json_values),
                "tool_choice": json_values,
                "response_format": st.one_of(
                    st.fixed_dictionaries(
                        {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                        optional={"json_schema": json_values},
                    ),
                    json_values,
                ),
                "user": json_values,
                "seed": json_values,
            },
        ),
        json_values,
    )


@EXAMPLES
@given(data=st.data())
def test_any_json_to_the_gateway_is_a_2xx_or_a_4xx(
    api: httpx.Client, server: Server, models: list[str], data: st.DataObject
) -> None:
    body = data.draw(chat_bodies(models))
    response = _send(api, "POST", "/v1/chat/completions", body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        assert set(error) == {"error"}, error
        assert set(error["error"]) == {"message", "type", "param", "code"}, error
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]"), response.text
    assert "Task exception was never retrieved" not in server.log()
