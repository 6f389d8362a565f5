"""The fake Bedrock, checked with the official ``boto3`` clients (``bedrock-runtime`` and
``bedrock``) pointed at it: what they send passes its SigV4 check, what it answers they parse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from tests.upstreams.base import ToolCall
from tests.upstreams.bedrock import FakeBedrock

AKID = "AKIAFAKEBEDROCK00001"
SECRET = "fake/Secret+Access/Key0000000000000000000"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOOLS: dict[str, Any] = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                },
            }
        }
    ]
}
HELLO = [{"role": "user", "content": [{"text": "Hello, how are you?"}]}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(credentials={AKID: SECRET}) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(fake: FakeBedrock) -> None:
    fake.reply.tool_call = None
    fake.fail_with.clear()
    fake.stream_exception = None


def client(fake: FakeBedrock, service: str = "bedrock-runtime", **keys: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=fake.url,
        region_name=keys.pop("region", "us-east-1"),
        aws_access_key_id=keys.pop("akid", AKID),
        aws_secret_access_key=keys.pop("secret", SECRET),
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def test_converse(fake: FakeBedrock) -> None:
    answer = client(fake).converse(
        modelId=MODEL,
        messages=HELLO,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 50, "temperature": 0.5},
    )
    assert answer["output"]["message"]["content"] == [{"text": fake.reply.text}]
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"] == {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21}
    recorded = fake.requests[-1]
    # boto3 percent-encodes the model id's colon in the path (and signs it encoded twice).
    assert recorded.path == f"/model/{MODEL}/converse"
    assert recorded.body["system"] == [{"text": "Be brief."}]
    assert recorded.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")
    assert "/us-east-1/bedrock/aws4_request" in recorded.headers["authorization"]
    assert fake.signed_with[-1] == AKID


def test_converse_stream(fake: FakeBedrock) -> None:
    answer = client(fake).converse_stream(modelId=MODEL, messages=HELLO)
    events = list(answer["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    text = "".join(d["text"] for d in deltas)
    assert text == fake.reply.text
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 9


def test_tool_use(fake: FakeBedrock) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"}, id="tooluse_1")
    answer = client(fake).converse(modelId=MODEL, messages=HELLO, toolConfig=TOOLS)
    assert answer["stopReason"] == "tool_use"
    use = answer["output"]["message"]["content"][0]["toolUse"]
    assert use == {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}
    # The result goes back in a user turn; the fake takes the whole conversation.
    follow = [
        *HELLO,
        answer["output"]["message"],
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}}],
        },
    ]
    fake.reply.tool_call = None
    again = client(fake).converse(modelId=MODEL, messages=follow, toolConfig=TOOLS)
    assert again["stopReason"] == "end_turn"

    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"}, id="tooluse_2")
    streamed = client(fake).converse_stream(modelId=MODEL, messages=HELLO, toolConfig=TOOLS)
    events = list(streamed["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"] == {"toolUseId": "tooluse_2", "name": "get_weather"}
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    pieces = "".join(d["toolUse"]["input"] for d in deltas)
    assert pieces == '{"city":"Paris"}'


def test_list_foundation_models(fake: FakeBedrock) -> None:
    found = client(fake, "bedrock").list_foundation_models()
    ids = [m["modelId"] for m in found["modelSummaries"]]
    assert ids[:2] == list(fake.models)
    assert found["modelSummaries"][0]["outputModalities"] == ["TEXT"]


def test_wrong_secret_is_refused_as_aws_does(fake: FakeBedrock) -> None:
    runtime = client(fake, secret="wrong" + SECRET[5:])
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        runtime.converse(modelId=MODEL, messages=HELLO)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert "signature" in error["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(runtime.exceptions.ClientError):
        client(fake, akid="AKIAUNKNOWN000000000").converse(modelId=MODEL, messages=HELLO)


def test_wrong_region_and_errors_by_name(fake: FakeBedrock) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="valid region"):
        client(fake, region="eu-west-1").converse(modelId=MODEL, messages=HELLO)
    runtime = client(fake)
    fake.fail_with.append("ThrottlingException")
    with pytest.raises(runtime.exceptions.ThrottlingException):
        runtime.converse(modelId=MODEL, messages=HELLO)
    with pytest.raises(runtime.exceptions.ValidationException, match="model identifier"):
        runtime.converse(modelId="no.such-model", messages=HELLO)
    with pytest.raises(runtime.exceptions.ValidationException, match="alternate"):
        runtime.converse(modelId=MODEL, messages=[*HELLO, *HELLO])


def test_exception_inside_a_stream(fake: FakeBedrock) -> None:
    fake.stream_exception = "throttlingException"
    stream = client(fake).converse_stream(modelId=MODEL, messages=HELLO)["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        list(stream)
    assert raised.value.response["Error"]["Code"] == "throttlingException"
