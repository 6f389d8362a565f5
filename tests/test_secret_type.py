"""``SecretText``: the plaintext of a key, a header value, a webhook secret or a token renders
nowhere — ``repr``, ``str``, ``format``, logging, pydantic's dumps, FastAPI's answers, pickles,
validation errors, a traceback's locals — and ``reveal()`` is the one way to it.

Every check searches the output for every 6-character piece of the secret (``leaked``).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import pickle
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from pydantic import BaseModel, ValidationError

from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import (
    SECRET_MASK,
    ConnectionCreate,
    ConnectionUpdate,
    PresetApply,
    SecretText,
    UnsavedTestRequest,
    WebhookCreate,
    invalid_input,
)
from ump_llm_connections.logs import JsonFormatter
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.errors import ProviderError
from ump_llm_connections.providers.target import Target, create_http_session
from ump_llm_connections.providers.types import ChatRequest, Message

KEY = "sk-proj-Zq81vNw0Yt5HgR2bLc9XaPe3Mu7Dk4Jf"
HEADER = "hdr-Q7w3Vb9kXr4TnE6y"
HOOK = "whsec-J4n8Lp2RzK6mW1cV"
SECRETS = (KEY, HEADER, HOOK)
CONNECTION = {
    "name": "sealed",
    "connection_type": "openai",
    "model_name": "gpt-4o-mini",
    "api_key": KEY,
    "extra_headers": {"X-Tenant-Token": HEADER},
}


def leaked(text: str) -> list[str]:
    """Every 6-character piece of a secret found in ``text``."""
    return [s[i : i + 6] for s in SECRETS for i in range(len(s) - 5) if s[i : i + 6] in text]


def sealed_models() -> list[BaseModel]:
    return [
        ConnectionCreate.model_validate(CONNECTION),
        ConnectionUpdate.model_validate({"api_key": KEY, "extra_headers": {"X-A": HEADER}}),
        UnsavedTestRequest.model_validate({"connection": CONNECTION}),
        PresetApply.model_validate({"api_keys": {"openai": KEY, "anthropic": HEADER}}),
        WebhookCreate.model_validate(
            {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": HOOK}
        ),
    ]


# -- the type -------------------------------------------------------------------------------


def test_it_renders_only_the_mask() -> None:
    secret = SecretText(KEY)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>60}",
        "%s %r" % (secret, secret),  # noqa: UP031 - what a logging call does
        format(secret, ""),
        repr([secret, {"k": secret}]),
    ]
    assert all(SECRET_MASK in text for text in shown)
    assert [leaked(text) for text in shown] == [[]] * len(shown)
    assert secret.reveal() == KEY


def test_it_reveals_on_purpose_only() -> None:
    secret = SecretText(KEY)
    assert secret == SecretText(KEY) and secret != SecretText(HEADER)
    assert secret != KEY  # never equal to its plaintext: comparing is not a way around reveal()
    assert hash(secret) == hash(SecretText(KEY))
    assert bool(secret) and not SecretText("")
    with pytest.raises(TypeError):
        "Bearer " + secret  # type: ignore[operator]
    with pytest.raises(TypeError):
        SecretText(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "dump", [json.dumps, orjson.dumps, pickle.dumps], ids=["json", "orjson", "pickle"]
)
def test_encoders_refuse_it(dump: Any) -> None:
    with pytest.raises(TypeError):
        dump({"key": SecretText(KEY)})


def test_copies_stay_sealed() -> None:
    secret = SecretText(KEY)
    assert copy.copy(secret) is secret and copy.deepcopy({"k": secret})["k"] is secret


def test_logging_it_shows_the_mask() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.secret_type")
    logger.addHandler(handler)
    try:
        logger.warning("key %s, headers %r", SecretText(KEY), {"X": SecretText(HEADER)})
    finally:
        logger.removeHandler(handler)
    assert SECRET_MASK in stream.getvalue() and leaked(stream.getvalue()) == []


# -- in the models --------------------------------------------------------------------------


@pytest.mark.parametrize("model", sealed_models(), ids=lambda m: type(m).__name__)
def test_models_never_dump_the_plaintext(model: BaseModel) -> None:
    outputs = {
        "repr": repr(model),
        "str": str(model),
        "dump": repr(model.model_dump()),
        "dump json mode": json.dumps(model.model_dump(mode="json")),
        "dump_json": model.model_dump_json(),
        "copy": repr(model.model_copy(deep=True)),
    }
    assert {name: leaked(text) for name, text in outputs.items() if leaked(text)} == {}
    assert SECRET_MASK in outputs["dump_json"]
    with pytest.raises(TypeError):
        pickle.dumps(model)


def test_models_keep_the_plaintext_for_reveal() -> None:
    created = ConnectionCreate.model_validate({**CONNECTION, "api_key": f"  {KEY}\n"})
    assert created.api_key is not None and created.api_key.reveal() == KEY  # stripped
    assert created.extra_headers["X-Tenant-Token"].reveal() == HEADER
    # A dump keeps the sealed values, so a model made from it holds the same secret.
    again = ConnectionCreate.model_validate(created.model_dump())
    assert again.api_key == created.api_key and again.extra_headers == created.extra_headers


def test_the_json_schema_is_a_write_only_string() -> None:
    schema = ConnectionCreate.model_json_schema()["properties"]
    key = schema["api_key"]["anyOf"][0]
    assert key == {
        "type": "string",
        "format": "password",
        "writeOnly": True,
        "minLength": 1,
        "maxLength": 4096,
    }
    (header,) = schema["extra_headers"]["patternProperties"].values()
    assert header == {"type": "string", "format": "password", "writeOnly": True, "maxLength": 2000}


BAD = [
    ("api_key", {**CONNECTION, "api_key": f"{KEY} {KEY}"}, "spaces"),
    ("api_key", {**CONNECTION, "api_key": KEY * 200}, "at most 4096"),
    ("api_key", {**CONNECTION, "api_key": f"{KEY}\x01"}, "control"),
    (
        "extra_headers.X-Tenant-Token",
        {**CONNECTION, "extra_headers": {"X-Tenant-Token": f"{HEADER}\n"}},
        "control",
    ),
    ("extra_headers.X-A", {**CONNECTION, "extra_headers": {"X-A": HEADER * 200}}, "at most 2000"),
]


@pytest.mark.parametrize(
    ("field", "body", "said"),
    BAD,
    ids=["space-in-key", "long-key", "control-in-key", "newline-in-header", "long-header"],
)
def test_a_refused_secret_is_not_in_the_error(field: str, body: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ConnectionCreate.model_validate(body)
    error = invalid_input(caught.value)
    assert error.field == field and said in error.message
    everything = [str(caught.value), repr(caught.value.errors()), error.message]
    assert [leaked(text) for text in everything] == [[]] * 3


def test_a_refused_webhook_secret_or_preset_key_is_not_in_the_error() -> None:
    refused: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (WebhookCreate, {"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": HOOK * 20}),
        (WebhookCreate, {"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": f"{HOOK}\n"}),
        (PresetApply, {"api_keys": {"openai": f"{KEY} x"}}),
    ]
    for model, body in refused:
        with pytest.raises(ValidationError) as caught:
            model.model_validate(body)
        assert leaked(str(caught.value) + repr(caught.value.errors())) == []


# -- through the API ------------------------------------------------------------------------


def test_the_api_never_echoes_a_refused_secret(api: httpx.Client) -> None:
    answers = [api.post("/api/connections", json=body) for _, body, _ in BAD if "api_key" in body]
    answers.append(api.post("/api/connections/test", json={"connection": BAD[0][1]}))
    answers.append(
        api.post("/api/presets/production-stack/apply", json={"api_keys": {"x": KEY * 200}})
    )
    answers.append(
        api.post(
            "/api/webhooks",
            json={"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": HOOK[:15]},
        )
    )
    created = api.post("/api/connections", json=CONNECTION)
    assert created.status_code == 201, created.text
    url = f"/api/connections/{created.json()['id']}"
    answers.append(api.patch(url, json={"api_key": f"{KEY} {KEY}"}))
    assert {a.status_code for a in answers} == {422}, [a.text for a in answers]
    assert all(a.json()["error"]["field"] for a in answers)
    answers += [created, api.get(url), api.get("/api/connections")]
    assert [leaked(a.text) for a in answers] == [[]] * len(answers)
    assert api.delete(url).status_code == 204


# -- tracebacks -----------------------------------------------------------------------------


def _with_locals(exc: BaseException) -> str:
    """A traceback as a locals-printing logger (Sentry, rich, ``capture_locals``) shows it."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


def _target(url: str = "http://127.0.0.1:9/v1") -> Target:
    return Target(
        "openai",
        url,
        "fake-model",
        SecretText(KEY),
        max_retries=0,
        timeout=5,
        extra_headers={"X-Tenant-Token": SecretText(HEADER)},
    )


def _fails_holding(target: Target) -> None:
    headers = target.extra_headers  # noqa: F841 - a local the traceback shows
    raise RuntimeError(f"failed on {target.host}")


def test_a_logged_traceback_of_a_frame_holding_a_target_shows_no_secret() -> None:
    target = _target()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.secret_type.traceback")
    logger.addHandler(handler)
    try:
        _fails_holding(target)
    except RuntimeError as exc:
        logger.exception("it failed: %r", target)
        with_locals = _with_locals(exc)
    finally:
        logger.removeHandler(handler)
    assert "target = Target(" in with_locals and SECRET_MASK in with_locals
    assert json.loads(stream.getvalue())["exc_info"].startswith("Traceback")
    assert leaked(stream.getvalue()) == [] and leaked(with_locals) == []


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_http_session()
    yield session
    await session.close()


@pytest.fixture
def echoing() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        fake.behaviour = Behaviour.echo_credentials
        yield fake


async def test_an_adapter_error_traceback_shows_no_secret(
    echoing: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    """The upstream echoes the key in its 401: neither the error, nor any frame's locals on the
    way up (the call, its headers, the error body) holds a piece of it."""
    adapter = adapter_for(_target(f"{echoing.url}/v1"), http)
    hello = ChatRequest(messages=[Message("user", "hi")], max_tokens=5)
    with pytest.raises(ProviderError) as caught:
        await adapter.chat(hello)
    assert caught.value.status == 401
    assert echoing.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    shown = _with_locals(caught.value)
    assert "call = HttpCall(" in shown and "_open" in shown
    assert leaked(shown) == [], shown
