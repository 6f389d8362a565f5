"""Bedrock connections through the live server (SQLite and PostgreSQL) against the fake Bedrock
(tests/upstreams/bedrock.py), which checks every request's SigV4 signature: keys of the
connection's own and the server's AWS credential chain, the gateway with the official ``openai``
client, tests, model lists, usage, errors and the Multi-Cloud preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.conftest import Database, Server, make_database, start_server
from tests.upstreams.base import Behaviour, ToolCall
from tests.upstreams.bedrock import FakeBedrock

AKID = "AKIABEDROCKTEST00001"
SECRET = "q8Zt/3vLk+W9xRmN2pQs7YhJ4cUa1oEbG6dFiT0n"
CHAIN_AKID = "ASIACHAINTEST0000001"
CHAIN_SECRET = "Xk2P9vR4mT7wQ1zL8nB5cY3hJ6fD0sA+gE/uOiKa"
CHAIN_TOKEN = "IQoJb3JpZ2luX2VjEFAKEsessionTOKEN0h9Gm3Rq"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
HELLO: list[Any] = [{"role": "user", "content": "Hello, how are you?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
# No AWS traffic off this machine: no instance metadata, no config files of the user's.
NO_AWS_FILES = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def fragments(secret: str) -> list[str]:
    """Pieces of a secret (8 characters, every 4) that must appear nowhere."""
    return [secret[i : i + 8] for i in range(0, len(secret) - 7, 4)]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(credentials={AKID: SECRET, CHAIN_AKID: CHAIN_SECRET}) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(fake: FakeBedrock) -> None:
    fake.behaviour = Behaviour.normal
    fake.script.clear()
    fake.fail_with.clear()
    fake.stream_exception = None
    fake.reply.tool_call = None
    fake.reply.cached_tokens = fake.reply.cache_write_tokens = 0


def connection(fake: FakeBedrock, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Bedrock",
        "connection_type": "bedrock",
        "base_url": fake.url,
        "model_name": MODEL,
        "aws_region": "us-east-1",
        "aws_access_key_id": AKID,
        "api_key": SECRET,
        "max_retries": 0,
        "input_cost_per_million": 3.0,
        "output_cost_per_million": 15.0,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def create(api: httpx.Client, fake: FakeBedrock, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/connections", json=connection(fake, **fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def gateway(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=10)


def usage_rows(server: Server, expected: int) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT prompt_tokens, completion_tokens, cache_read_tokens, success, error_kind, cost"
        " FROM llm_connection_usage"
        " WHERE connection_id IN (SELECT id FROM llm_connections) ORDER BY id"
    )
    deadline = time.monotonic() + 10
    while True:
        rows = server.db.query(sql)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_chat_stream_tools_usage_and_models(
    api: httpx.Client, server: Server, fake: FakeBedrock
) -> None:
    responses: list[str] = []
    created = create(api, fake)
    responses.append(json.dumps(created))
    assert created["api_format"] == "bedrock"
    assert created["aws_access_key_id"] == AKID
    assert created["has_api_key"] is True
    cid = created["id"]

    tested = api.post(f"/api/connections/{cid}/test")
    responses.append(tested.text)
    assert tested.json()["success"] is True, tested.text
    assert tested.json()["tokens"] == {"prompt": 12, "completion": 9}
    assert tested.json()["response_preview"] == fake.reply.text
    assert fake.signed_with[-1] == AKID

    client = gateway(server)
    fake.reply.cached_tokens = 4
    answer = client.chat.completions.create(
        model="Bedrock", messages=[{"role": "system", "content": "Be brief."}, *HELLO]
    )
    assert answer.choices[0].message.content == fake.reply.text
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 9)
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    sent = fake.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.body["system"] == [{"text": "Be brief."}]
    assert sent.body["messages"] == [{"role": "user", "content": [{"text": HELLO[0]["content"]}]}]

    fake.reply.cached_tokens = 0
    pieces = []
    for chunk in client.chat.completions.create(
        model="Bedrock",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        temperature=1.5,
        max_tokens=40,
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) == (12, 9)
    assert "".join(pieces) == fake.reply.text
    assert fake.requests[-1].path == f"/model/{MODEL}/converse-stream"
    assert fake.requests[-1].body["inferenceConfig"] == {"maxTokens": 40, "temperature": 1.0}

    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"}, id="tooluse_1")
    called = client.chat.completions.create(model="Bedrock", messages=HELLO, tools=TOOLS)
    calls = called.choices[0].message.tool_calls
    assert calls is not None and called.choices[0].finish_reason == "tool_calls"
    first_call = calls[0]
    assert isinstance(first_call, ChatCompletionMessageFunctionToolCall)
    assert (first_call.id, first_call.function.name) == ("tooluse_1", "get_weather")
    assert json.loads(first_call.function.arguments) == {"city": "Paris"}
    spec = fake.requests[-1].body["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["inputSchema"]["json"] == TOOLS[0]["function"]["parameters"]
    streamed = list(
        client.chat.completions.create(model="Bedrock", messages=HELLO, tools=TOOLS, stream=True)
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in streamed
        if c.choices and c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
    )
    assert json.loads(arguments) == {"city": "Paris"}
    # The tool's result goes back as a toolResult in a user turn.
    fake.reply.tool_call = None
    follow = [
        *HELLO,
        called.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
    ]
    final = client.chat.completions.create(model="Bedrock", messages=follow, tools=TOOLS)
    assert final.choices[0].message.content == fake.reply.text
    turns = fake.requests[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0]["toolUse"]["input"] == {"city": "Paris"}
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}}
    ]

    rows = usage_rows(server, 5)
    assert len(rows) == 5
    first = rows[0]
    assert first[:5] == (12, 9, 4, True, None)
    assert first[5] == pytest.approx((8 * 3.0 + 4 * 3.0 + 9 * 15.0) / 1_000_000)

    models = api.get(f"/api/connections/{cid}/models")
    assert models.status_code == 200, models.text
    assert models.json()["models"] == list(fake.models)  # text models only, no embeddings
    assert fake.requests[-1].path == "/foundation-models"

    for secret_piece in fragments(SECRET):
        for text in responses:
            assert secret_piece not in text
        assert secret_piece not in server.log()
        assert secret_piece not in repr(server.db.query("SELECT * FROM llm_connections"))
        if server.db.backend == "sqlite":
            for path in Path(server.db.dsn).parent.glob("ump.db*"):
                assert secret_piece.encode() not in path.read_bytes(), path


def test_fields_are_checked(api: httpx.Client, fake: FakeBedrock) -> None:
    def refused(**fields: Any) -> str:
        response = api.post("/api/connections", json=connection(fake, **fields))
        assert response.status_code == 422, response.text
        assert SECRET not in response.text
        field: str = response.json()["error"]["field"]
        return field

    assert refused(aws_region=None) == "aws_region"
    assert refused(aws_region="US East 1") == "aws_region"
    assert refused(api_key=None) == "api_key"
    assert refused(aws_access_key_id=None) == "aws_access_key_id"
    assert refused(aws_access_key_id="not a key id") == "aws_access_key_id"

    chain = create(
        api,
        fake,
        name="Chain",
        base_url=None,
        aws_region="eu-west-1",
        aws_access_key_id=None,
        api_key=None,
    )
    assert chain["base_url"] == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert chain["has_api_key"] is False and chain["aws_access_key_id"] is None
    url = f"/api/connections/{chain['id']}"
    moved = api.patch(url, json={"aws_region": "us-west-2"})
    assert moved.json()["base_url"] == "https://bedrock-runtime.us-west-2.amazonaws.com"
    half = api.patch(url, json={"api_key": SECRET})
    assert half.status_code == 422 and half.json()["error"]["field"] == "aws_access_key_id"
    both = api.patch(url, json={"api_key": SECRET, "aws_access_key_id": AKID})
    assert both.status_code == 200 and both.json()["has_api_key"] is True
    cleared = api.patch(url, json={"api_key": None})
    assert cleared.status_code == 422 and cleared.json()["error"]["field"] == "api_key"


def expect_failure(api: httpx.Client, cid: str, kind: str, *words: str) -> str:
    result = api.post(f"/api/connections/{cid}/test").json()
    assert result["success"] is False
    assert result["error_kind"] == kind, result
    message: str = result["error"]
    for word in words:
        assert word in message, message
    assert SECRET[:8] not in message
    return message


@pytest.mark.parametrize(
    ("name", "kind", "advice"),
    [
        ("ThrottlingException", "rate_limited", "throttled"),
        ("AccessDeniedException", "auth", "bedrock:InvokeModel"),
        ("UnrecognizedClientException", "auth", "check the AWS credentials"),
        ("ExpiredTokenException", "auth", "expired"),
        ("ValidationException", "bad_request", "refused the request"),
        ("ResourceNotFoundException", "not_found", "check the model id"),
        ("ServiceUnavailableException", "server_error", "Bedrock failed"),
        ("ModelNotReadyException", "server_error", "loading the model"),
        ("ModelTimeoutException", "timeout", "too long"),
        ("ServiceQuotaExceededException", "rate_limited", "quota"),
    ],
)
def test_errors_are_classified(
    api: httpx.Client, fake: FakeBedrock, name: str, kind: str, advice: str
) -> None:
    cid = create(api, fake)["id"]
    fake.fail_with.append(name)
    expect_failure(api, cid, kind, name, advice)


def test_broken_streams_and_bad_answers(
    api: httpx.Client, server: Server, fake: FakeBedrock
) -> None:
    cid = create(api, fake)["id"]
    fake.behaviour = Behaviour.cut_stream
    expect_failure(api, cid, "bad_response", "broke off")
    fake.behaviour = Behaviour.malformed
    expect_failure(api, cid, "bad_response")
    fake.behaviour = Behaviour.normal
    fake.stream_exception = "throttlingException"
    expect_failure(api, cid, "rate_limited", "mid-stream", "ThrottlingException")
    fake.stream_exception = "modelStreamErrorException"
    client = gateway(server)
    with pytest.raises(openai.APIError, match="ModelStreamErrorException"):
        for _ in client.chat.completions.create(model="Bedrock", messages=HELLO, stream=True):
            pass
    fake.stream_exception = None
    unknown = api.patch(f"/api/connections/{cid}", json={"model_name": "no.such-model-v1:0"})
    assert unknown.status_code == 200
    expect_failure(api, cid, "bad_request", "model identifier is invalid")


def test_wrong_secret_and_wrong_region(api: httpx.Client, fake: FakeBedrock) -> None:
    wrong = create(api, fake, api_key="wrong" + SECRET[5:])
    expect_failure(api, wrong["id"], "auth", "InvalidSignatureException", "does not match")
    region = create(api, fake, name="Frankfurt", aws_region="eu-central-1")
    message = expect_failure(api, region["id"], "auth", "InvalidSignatureException")
    assert "valid region, not 'eu-central-1'" in message
    assert "region 'eu-central-1'" in message
    models = api.get(f"/api/connections/{region['id']}/models")
    assert models.status_code == 502
    assert models.json()["error"]["type"] == "auth"


def test_multi_cloud_preset(api: httpx.Client, fake: FakeBedrock) -> None:
    keys = {
        "openai": "sk-preset-openai-0000",
        "anthropic": "sk-ant-preset-0000",
        "google": "g" * 20,
    }
    missing = api.post("/api/presets/multi-cloud/apply", json={"api_keys": keys})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "aws_region"
    half = api.post(
        "/api/presets/multi-cloud/apply",
        json={"api_keys": keys, "aws_region": "us-east-1", "aws_access_key_id": AKID},
    )
    assert half.status_code == 422 and half.json()["error"]["field"] == "api_keys.bedrock"
    applied = api.post(
        "/api/presets/multi-cloud/apply",
        json={
            "api_keys": {**keys, "bedrock": SECRET},
            "aws_region": "us-east-1",
            "aws_access_key_id": AKID,
        },
    )
    assert applied.status_code == 201, applied.text
    assert SECRET[:8] not in applied.text
    bedrock = next(c for c in applied.json()["connections"] if c["connection_type"] == "bedrock")
    assert bedrock["base_url"] == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert (bedrock["aws_access_key_id"], bedrock["has_api_key"]) == (AKID, True)
    assert applied.json()["skipped"] == []
    members = [m["connection_name"] for m in applied.json()["pool"]["members"]]
    assert "AWS Bedrock" in members
    # With the server's credentials instead: a region is enough.
    chained = api.post(
        "/api/presets/multi-cloud/apply",
        json={"api_keys": keys, "aws_region": "eu-west-1", "prefix": "EU "},
    )
    assert chained.status_code == 201, chained.text
    names = {c["name"]: c for c in chained.json()["connections"]}
    assert names["EU AWS Bedrock"]["has_api_key"] is False
    # The applied connection works once pointed at the fake (the key must be sent again).
    moved = api.patch(
        f"/api/connections/{bedrock['id']}", json={"base_url": fake.url, "api_key": SECRET}
    )
    assert moved.status_code == 200, moved.text
    assert api.post(f"/api/connections/{bedrock['id']}/test").json()["success"] is True


@pytest.fixture(scope="module")
def chain_server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, on a database of its own (of the same backend), whose environment
    holds AWS credentials (with a session token)."""
    folder = tmp_path_factory.mktemp(f"bedrock-chain-{database.backend}")
    made = make_database(database.backend, folder)
    running = start_server(
        next(made),
        folder / "data",
        UMP_HEALTH_MONITOR="false",
        UMP_USAGE_FLUSH_S="0.1",
        AWS_ACCESS_KEY_ID=CHAIN_AKID,
        AWS_SECRET_ACCESS_KEY=CHAIN_SECRET,
        AWS_SESSION_TOKEN=CHAIN_TOKEN,
        **NO_AWS_FILES,
    )
    yield running
    running.stop()
    next(made, None)  # dropped


def test_keys_of_the_connection_or_the_servers_chain(
    chain_server: Server, fake: FakeBedrock
) -> None:
    with chain_server.client() as api:
        api.post("/api/connections", json=connection(fake, name="Own keys"))
        chain = api.post(
            "/api/connections",
            json=connection(fake, name="Chain", aws_access_key_id=None, api_key=None),
        )
        assert chain.status_code == 201, chain.text
        client = gateway(chain_server)
        assert client.chat.completions.create(model="Chain", messages=HELLO).choices
        assert (fake.signed_with[-1], fake.session_tokens[-1]) == (CHAIN_AKID, CHAIN_TOKEN)
        assert client.chat.completions.create(model="Own keys", messages=HELLO).choices
        assert (fake.signed_with[-1], fake.session_tokens[-1]) == (AKID, None)
        for _ in client.chat.completions.create(model="Chain", messages=HELLO, stream=True):
            pass
        assert fake.signed_with[-1] == CHAIN_AKID
        for name in ("Own keys", "Chain"):
            api.delete(f"/api/connections/{name}")
    for secret in (CHAIN_SECRET, CHAIN_TOKEN, SECRET):
        assert secret[:8] not in chain_server.log()
        assert secret[:8] not in repr(chain_server.db.query("SELECT * FROM llm_connections"))


def test_without_any_credentials_the_error_says_what_to_set(tmp_path: Path) -> None:
    """The chain of a process with no AWS credentials at all (nothing off this machine is
    asked: instance metadata is off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(NO_AWS_FILES)
    code = (
        "import asyncio\n"
        "from ump_llm_connections.providers import aws\n"
        "from ump_llm_connections.providers.errors import ProviderError\n"
        "try:\n"
        "    asyncio.run(aws.credentials_for(None, None))\n"
        "except ProviderError as exc:\n"
        "    print(exc.kind, exc.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.startswith("auth no AWS credentials"), done.stdout + done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stdout and "aws_access_key_id" in done.stdout


def test_botocore_is_loaded_only_when_bedrock_is_used(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import ump_llm_connections\n"
        "from ump_llm_connections.api.app import create_app\n"
        "import ump_llm_connections.providers\n"
        "create_app()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3')))\n"
    )
    env = {**os.environ, "UMP_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
