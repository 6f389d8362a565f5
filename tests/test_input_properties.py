"""Property tests: whatever JSON comes in, the answer is a 2xx or a 4xx in the error shape.

hypothesis writes bodies for the connection schema (POST and PATCH ``/api/connections``: every
field with plausible and arbitrary values, unknown fields, NULs, lone surrogates, control
characters, huge numbers, nested junk) and for the gateway's request parser (``POST
/v1/chat/completions``, against a fake upstream of every wire format). The real server runs
on both databases; the ``api`` fixture then checks its log holds no 500 and no traceback.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
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
HEADER_NAMES = st.from_regex(r"\AX-[A-Za-z0-9-]{1,12}\Z")
small_floats = st.floats(min_value=0.1, max_value=100)
# Values that pass, so that bodies reach the registry and the database, NULs and all.
VALID: dict[str, st.SearchStrategy[Any]] = {
    "name": nasty_text.filter(lambda t: t.strip() != ""),
    "connection_type": st.sampled_from(TYPES),
    "model_name": nasty_text.filter(lambda t: t.strip() != ""),
    "base_url": st.just(LOCAL_URL),
    "api_format": st.sampled_from(["openai", "anthropic", "google", "ollama"]),
    "api_key": nasty_text.filter(lambda t: t.strip() != ""),
    "organization_id": nasty_text,
    "api_version": nasty_text,
    "deployment": nasty_text,
    "description": nasty_text,
    "owner": nasty_text,
    "team": nasty_text,
    "aws_instance_id": nasty_text,
    "aws_region": nasty_text,
    "extra_headers": st.dictionaries(
        st.one_of(HEADER_NAMES, st.sampled_from(["Host", "TE", "Proxy-A", "X-Auth-Token"])),
        nasty_text,
        max_size=3,
    ),
    "tags": st.lists(nasty_text, max_size=5),
    "timeout": st.one_of(small_floats, st.integers(1, 3600)),
    "max_retries": st.integers(0, 10),
    "temperature": st.floats(0, 2),
    "max_tokens": st.integers(1, 4096),
    "priority": st.integers(-1000, 1000),
    "weight": st.integers(0, 10_000),
    "rpm_limit": st.integers(1, 10_000),
    "tpm_limit": st.integers(1, 10_000),
    "input_cost_per_million": small_floats,
    "output_cost_per_million": small_floats,
    "monthly_budget": small_floats,
    "health_interval_s": st.integers(10, 86_400),
    "probe_mode": st.sampled_from(["cheap", "generate"]),
}
REQUIRED = ("name", "connection_type", "model_name")


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every place in a JSON document a value sits: (container, key or index)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from _slots(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from _slots(item)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any], known: list[str]) -> Any:
    """A body from ``base`` with junk in up to three places: a value replaced by any JSON, a
    field added (a known one, a near miss or a stranger), or a field taken away."""
    body = copy.deepcopy(draw(base))  # st.just() hands out the same object every time
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        slots = list(_slots(body))
        action = draw(st.sampled_from(["replace", "add", "remove"]))
        if action == "replace" and slots:
            container, key = draw(st.sampled_from(slots))
            container[key] = draw(json_values)
        elif action == "add" and isinstance(body, dict):
            name = draw(
                st.one_of(
                    st.sampled_from(known), st.sampled_from(known).map(lambda k: k[:-1]), nasty_text
                )
            )
            body[name] = draw(json_values)
        elif action == "remove" and isinstance(body, dict) and body:
            del body[draw(st.sampled_from(sorted(body)))]
    return body


FIELDS = list(ConnectionFields.model_fields)
valid_connections = st.fixed_dictionaries(
    {name: VALID[name] for name in REQUIRED},
    optional={
        **{name: VALID.get(name, st.booleans()) for name in FIELDS if name not in REQUIRED},
    },
)
valid_patches = st.fixed_dictionaries(
    {}, optional={name: VALID.get(name, st.booleans()) for name in FIELDS}
)
connection_bodies = st.one_of(*[mutated(valid_connections, FIELDS)] * 3, json_values)
patch_bodies = st.one_of(*[mutated(valid_patches, FIELDS)] * 3, json_values)


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


NUL_BODY = {"name": "Nul", "connection_type": "local", "model_name": "m", "description": "a\x00"}
SURROGATE_BODY = {"name": "S", "connection_type": "local", "model_name": "m", "tags": ["\ud800"]}


@EXAMPLES
@given(body=connection_bodies)
@example(body=NUL_BODY)
@example(body=SURROGATE_BODY)
@example(body={**NUL_BODY, "name": "Flags", "description": "", "use_in_livekit": "yes"})
def test_any_json_to_create_is_a_2xx_or_a_4xx(api: httpx.Client, body: Any) -> None:
    response = _send(api, "POST", "/api/connections", body)
    _assert_rest_answer(response)
    if response.status_code == 201:
        assert api.delete(f"/api/connections/{response.json()['id']}").status_code == 204


@EXAMPLES
@given(body=patch_bodies)
@example(body={"owner": "\x00"})
@example(body={"api_key": "sk-\ud800-abcdefghijkl"})
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


MODELS = [f"prop-{api_format}" for api_format in FAKES]


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


valid_messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "developer", "user", "tool"]),
                "content": nasty_text,
            }
        ),
        st.fixed_dictionaries(
            {"role": st.just("user")},
            optional={"name": nasty_text, "tool_call_id": nasty_text},
        ).map(lambda m: {**m, "content": [{"type": "text", "text": "hi"}]}),
        st.fixed_dictionaries(
            {
                "role": st.just("assistant"),
                "content": st.one_of(st.none(), nasty_text),
                "tool_calls": st.lists(
                    st.fixed_dictionaries(
                        {
                            "id": nasty_text,
                            "type": st.just("function"),
                            "function": st.fixed_dictionaries(
                                {
                                    "name": nasty_text,
                                    "arguments": st.one_of(nasty_text, json_values),
                                }
                            ),
                        }
                    ),
                    min_size=1,
                    max_size=2,
                ),
            }
        ),
    ),
    min_size=1,
    max_size=4,
).map(lambda ms: [*ms, {"role": "user", "content": "hi"}])
valid_tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": nasty_text},
                optional={
                    "description": nasty_text,
                    "parameters": st.just({"type": "object", "properties": {}}),
                },
            ),
        }
    ),
    min_size=1,
    max_size=2,
)
CHAT_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "user",
]


def chat_bodies(models: list[str]) -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries(
        {"model": st.sampled_from(models), "messages": valid_messages},
        optional={
            "stream": st.booleans(),
            "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
            "temperature": st.floats(0, 2),
            "max_tokens": st.integers(1, 100),
            "stop": st.one_of(nasty_text, st.lists(nasty_text, max_size=2)),
            "tools": valid_tools,
            "tool_choice": st.sampled_from(["auto", "none", "required"]),
            "response_format": st.one_of(
                st.just({"type": "json_object"}),
                st.just({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
            ),
            "user": nasty_text,
        },
    )
    return st.one_of(*[mutated(valid, CHAT_FIELDS)] * 3, json_values)


@EXAMPLES
@given(body=chat_bodies(MODELS))
@example(body={"model": "prop-openai", "messages": [{"role": ["user"], "content": "hi"}]})
@example(
    body={
        "model": "prop-anthropic",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": "not an object"},
    }
)
def test_any_json_to_the_gateway_is_a_2xx_or_a_4xx(
    api: httpx.Client, server: Server, models: list[str], body: Any
) -> None:
    response = _send(api, "POST", "/v1/chat/completions", body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        assert set(error) == {"error"}, error
        assert set(error["error"]) == {"message", "type", "param", "code"}, error
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]"), response.text
    assert "Task exception was never retrieved" not in server.log()
