"""The fake Gemini API server, checked with the official ``google-genai`` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.upstreams.base import Behaviour, ToolCall
from tests.upstreams.google import FakeGemini

KEY = "AIza-fake-gemini-key-0000000000000"
PROMPT = "Hello, how are you?"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city.",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
def gemini(fake: FakeGemini) -> Iterator[genai.Client]:
    with client(fake) as sdk:
        yield sdk


def client(
    fake: FakeGemini, *, key: str = KEY, version: str = "v1beta", timeout_ms: int = 5000
) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=fake.url,
            api_version=version,
            timeout=timeout_ms,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def test_generate_with_system_instruction(fake: FakeGemini, gemini: genai.Client) -> None:
    answer = gemini.models.generate_content(
        model="fake-model",
        contents=PROMPT,
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", temperature=0.2, max_output_tokens=64
        ),
    )
    assert answer.text == fake.reply.text
    assert answer.candidates is not None
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.usage_metadata is not None
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (12, 9)
    assert usage.total_token_count == 21
    assert answer.model_version == "fake-model"

    recorded = fake.requests[-1]
    assert recorded.method == "POST"
    assert recorded.path == "/v1beta/models/fake-model:generateContent"
    assert recorded.headers["x-goog-api-key"] == KEY
    assert "key" not in recorded.query
    assert "authorization" not in recorded.headers
    assert recorded.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert recorded.body["contents"] == [{"role": "user", "parts": [{"text": PROMPT}]}]
    assert recorded.body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 64}


def test_v1_length_and_no_usage(fake: FakeGemini) -> None:
    fake.reply.finish_reason = "length"
    fake.reply.report_usage = False
    with client(fake, version="v1") as v1:
        answer = v1.models.generate_content(model="models/fake-model-large", contents=PROMPT)
    assert answer.text == fake.reply.text
    assert answer.candidates is not None
    assert answer.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert answer.usage_metadata is None
    assert fake.requests[-1].path == "/v1/models/fake-model-large:generateContent"


def test_stream(fake: FakeGemini, gemini: genai.Client) -> None:
    chunks = list(
        gemini.models.generate_content_stream(
            model="fake-model",
            contents=PROMPT,
            config=types.GenerateContentConfig(system_instruction="Be brief."),
        )
    )
    assert len(chunks) == len(fake.reply.words())
    assert "".join(c.text or "" for c in chunks) == fake.reply.text
    last = chunks[-1]
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 9
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[0].usage_metadata is None
    recorded = fake.requests[-1]
    assert recorded.path == "/v1beta/models/fake-model:streamGenerateContent"
    assert recorded.query == {"alt": "sse"}
    assert recorded.headers["x-goog-api-key"] == KEY
    assert "systemInstruction" in recorded.body


def test_function_calling_plain_and_streamed(fake: FakeGemini, gemini: genai.Client) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    config = types.GenerateContentConfig(
        tools=[WEATHER],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.AUTO
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    answer = gemini.models.generate_content(
        model="fake-model", contents="Weather in Paris?", config=config
    )
    assert answer.function_calls is not None
    (call,) = answer.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert answer.candidates is not None
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    body = fake.requests[-1].body
    (declaration,) = body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    chunks = list(
        gemini.models.generate_content_stream(
            model="fake-model", contents="Weather in Paris?", config=config
        )
    )
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]

    # The call and its result go back as functionCall / functionResponse parts.
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")]),
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"temp": 21})],
        ),
    ]
    fake.reply.tool_call = None
    answer = gemini.models.generate_content(model="fake-model", contents=history, config=config)
    assert answer.text == fake.reply.text
    contents = fake.requests[-1].body["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    assert contents[2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"temp": 21},
    }


def test_text_when_no_tools_offered(fake: FakeGemini, gemini: genai.Client) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    answer = gemini.models.generate_content(model="fake-model", contents=PROMPT)
    assert answer.function_calls is None
    assert answer.text == fake.reply.text


def test_models(fake: FakeGemini, gemini: genai.Client) -> None:
    models = list(gemini.models.list())
    assert [m.name for m in models] == [f"models/{m}" for m in fake.models]
    assert models[0].supported_actions == ["generateContent", "countTokens"]
    assert fake.requests[-1].path == "/v1beta/models"
    one = gemini.models.get(model="fake-model-large")
    assert one.name == "models/fake-model-large"
    assert one.display_name == "fake-model-large"
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.get(model="no-such-model")
    assert caught.value.code == 404


def test_count_tokens(fake: FakeGemini, gemini: genai.Client) -> None:
    counted = gemini.models.count_tokens(model="fake-model", contents=PROMPT)
    assert counted.total_tokens == 12


@pytest.mark.parametrize(
    ("behaviour", "error", "code", "status"),
    [
        (Behaviour.unauthorized, errors.ClientError, 400, "INVALID_ARGUMENT"),
        (Behaviour.model_not_found, errors.ClientError, 404, "NOT_FOUND"),
        (Behaviour.rate_limited, errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        (Behaviour.server_error, errors.ServerError, 500, "INTERNAL"),
    ],
)
def test_errors(
    fake: FakeGemini,
    gemini: genai.Client,
    behaviour: Behaviour,
    error: type[errors.APIError],
    code: int,
    status: str,
) -> None:
    fake.behaviour = behaviour
    with pytest.raises(error) as caught:
        gemini.models.generate_content(model="fake-model", contents=PROMPT)
    assert caught.value.code == code
    assert caught.value.status == status
    assert caught.value.message
    if behaviour is Behaviour.rate_limited:
        assert isinstance(caught.value.response, (httpx.Response, httpx2.Response))
        assert caught.value.response.headers["retry-after"] == "1"
    assert len(fake.requests) == 1  # no retries


def test_wrong_key_key_in_url_and_unknown_model(fake: FakeGemini, gemini: genai.Client) -> None:
    with client(fake, key="AIza-wrong") as wrong, pytest.raises(errors.ClientError) as caught:
        wrong.models.generate_content(model="fake-model", contents=PROMPT)
    assert caught.value.code == 400
    assert "API key not valid" in str(caught.value.message)

    # The right key, but in the URL: refused, since keys belong in the header.
    response = httpx.post(
        f"{fake.url}/v1beta/models/fake-model:generateContent",
        params={"key": KEY},
        json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert fake.requests[-1].query == {"key": KEY}

    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model="no-such-model", contents=PROMPT)
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contents": []},
        {"contents": [{"role": "user", "parts": []}]},
        {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]},
        {"contents": [{"parts": [{"text": "hi"}]}], "messages": []},
    ],
)
def test_invalid_request(fake: FakeGemini, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{fake.url}/v1beta/models/fake-model:generateContent",
        headers={"x-goog-api-key": KEY},
        json=body,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"]


def test_stream_needs_alt_sse(fake: FakeGemini) -> None:
    response = httpx.post(
        f"{fake.url}/v1beta/models/fake-model:streamGenerateContent",
        headers={"x-goog-api-key": KEY},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert response.status_code == 400


def test_hang_times_out(fake: FakeGemini) -> None:
    fake.behaviour = Behaviour.hang
    with (
        client(fake, timeout_ms=500) as impatient,
        pytest.raises((httpx.TimeoutException, httpx2.TimeoutException)),
    ):
        impatient.models.generate_content(model="fake-model", contents=PROMPT)


def test_slow_first_token(fake: FakeGemini, gemini: genai.Client) -> None:
    fake.behaviour = Behaviour.slow_first_token
    fake.delay = 0.2
    chunks = list(gemini.models.generate_content_stream(model="fake-model", contents=PROMPT))
    assert "".join(c.text or "" for c in chunks) == fake.reply.text


def test_malformed_and_cut_stream(fake: FakeGemini, gemini: genai.Client) -> None:
    fake.behaviour = Behaviour.malformed
    with pytest.raises(json.JSONDecodeError):  # the SDK parses a whole answer with json.loads
        gemini.models.generate_content(model="fake-model", contents=PROMPT)
    with pytest.raises(errors.UnknownApiResponseError):
        list(gemini.models.generate_content_stream(model="fake-model", contents=PROMPT))

    fake.behaviour = Behaviour.cut_stream
    stream = gemini.models.generate_content_stream(model="fake-model", contents=PROMPT)
    received: list[str] = []
    with pytest.raises((httpx.RemoteProtocolError, httpx2.RemoteProtocolError)):
        received.extend(chunk.text or "" for chunk in stream)
    assert "".join(received) == "".join(fake.reply.words()[: len(fake.reply.words()) // 2])
