"""LiveKit Agents on the gateway: ``connection.create_llm_instance()`` in LiveKit's own text-mode
test harness (``AgentSession.run``, no room), the guide's snippet, and the agent example."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from livekit.agents import Agent, AgentSession, RunContext, RunResult, function_tool
from livekit.agents.testing import fake_job_context

from tests.conftest import Server, free_port
from tests.test_gateway import usage_rows
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream, ToolCall
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections import (
    Connection,
    ConnectionManager,
    GatewayError,
    IntegrationNotEnabled,
    ServerUnreachable,
)

KEY = "sk-livekit-upstream-key-0123456789"
EXAMPLE = Path(__file__).parent.parent / "examples" / "livekit_agent.py"


Fields = dict[str, Any]


def anthropic_fields(fake: FakeUpstream) -> Fields:
    return {"connection_type": "anthropic", "base_url": fake.url + "/v1", "api_key": KEY}


def ollama_fields(fake: FakeUpstream) -> Fields:
    return {"connection_type": "local", "base_url": fake.url, "api_format": "ollama"}


UPSTREAMS: dict[str, tuple[Callable[[], FakeUpstream], Callable[[FakeUpstream], Fields]]] = {
    "anthropic": (lambda: FakeAnthropic(api_key=KEY), anthropic_fields),
    "ollama": (lambda: FakeOllama(api_key=None), ollama_fields),
}


def create(api: httpx.Client, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "name": "lk",
        "model_name": "fake-model",
        "max_retries": 0,
        "use_in_livekit": True,
        **fields,
        **extra,
    }
    response = api.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(params=list(UPSTREAMS))
def fake(request: pytest.FixtureRequest, api: httpx.Client) -> Iterator[FakeUpstream]:
    """A fake upstream of each kind, behind a connection "lk" enabled for LiveKit."""
    make, fields = UPSTREAMS[str(request.param)]
    with make() as upstream:
        create(api, fields(upstream))
        yield upstream


@pytest.fixture
async def manager(server: Server) -> AsyncIterator[ConnectionManager]:
    async with ConnectionManager(api_url=f"{server.url}/api") as sdk:
        yield sdk


async def sources(server: Server, expected: int) -> list[str]:
    """The usage rows' sources, once ``expected`` rows are written."""
    rows = await asyncio.to_thread(usage_rows, server, expected)
    return [row[0] for row in rows]


def system_prompt(fake: FakeUpstream) -> str:
    """The system prompt of the last request the upstream received, in its own format."""
    body = fake.requests[-1].body
    if isinstance(fake, FakeAnthropic):
        return str(body["system"])
    (first, *_) = body["messages"]
    assert first["role"] == "system"
    return str(first["content"])


async def test_an_agent_turn_goes_through_the_gateway(
    fake: FakeUpstream, manager: ConnectionManager, server: Server
) -> None:
    connection = await manager.get_connection("lk", use_in_livekit=True)
    async with (
        connection.create_llm_instance() as llm,
        AgentSession(llm=llm) as session,
    ):
        await session.start(Agent(instructions="You are a terse assistant."))
        result: RunResult[None] = await session.run(user_input="Hello, how are you?")
        reply = result.expect.next_event().is_message(role="assistant").event().item
        result.expect.no_more_events()
    assert reply.text_content == fake.reply.text
    assert system_prompt(fake) == "You are a terse assistant."
    assert await sources(server, 1) == ["livekit"]


class Forecaster(Agent):
    """Answers with a tool; the tool switches the fake to a text answer, so the model's
    second turn (which sees the tool's result) is the final answer."""

    def __init__(self, fake: FakeUpstream) -> None:
        super().__init__(instructions="Look the weather up before you answer.")
        self.fake = fake

    @function_tool
    async def get_weather(self, context: RunContext[None], city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        self.fake.reply.tool_call = None
        return f"sunny and 21 C in {city}"


def tool_result(fake: FakeUpstream) -> Any:
    """The tool's result as the last request carried it to the upstream."""
    last = fake.requests[-1].body["messages"][-1]
    if isinstance(fake, FakeAnthropic):
        (block,) = last["content"]
        assert block["type"] == "tool_result"
        return block["content"]
    assert last["role"] == "tool"
    return last["content"]


async def test_a_tool_call_and_its_result_go_back_for_the_answer(
    fake: FakeUpstream, manager: ConnectionManager, server: Server
) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    connection = await manager.get_connection("lk")
    async with (
        connection.create_llm_instance() as llm,
        AgentSession(llm=llm) as session,
    ):
        await session.start(Forecaster(fake))
        result: RunResult[None] = await session.run(user_input="What is the weather in Paris?")
        result.expect.next_event().is_function_call(name="get_weather", arguments={"city": "Paris"})
        result.expect.next_event().is_function_call_output(output="sunny and 21 C in Paris")
        reply = result.expect.next_event().is_message(role="assistant").event().item
        result.expect.no_more_events()
    assert reply.text_content == fake.reply.text
    assert tool_result(fake) == "sunny and 21 C in Paris"
    first_request = fake.requests[-2].body
    assert [t.get("name") or t["function"]["name"] for t in first_request["tools"]] == [
        "get_weather"
    ]
    assert await sources(server, 2) == ["livekit", "livekit"]


# "Integration with LiveKit" > "Usage in LiveKit Agent", verbatim (it awaits at the top level).
GUIDE_SNIPPET = """
# In your LiveKit agent code
from ump_llm_connections import get_connection

# Get connection by name or ID
connection = await get_connection("Local Ollama")

# Use in LiveKit agent
llm = connection.create_llm_instance()

# Chat function
async def chat(text: str):
    response = await llm.generate(
        prompt=text,
        temperature=connection.temperature,
        max_tokens=connection.max_tokens
    )
    return response.text
"""


async def test_the_guides_snippet_runs_as_written(
    api: httpx.Client, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UMP_AI_API_URL", f"{server.url}/api")
    monkeypatch.delenv("UMP_API_TOKEN", raising=False)
    with FakeOllama(api_key=None) as fake:
        create(api, ollama_fields(fake), name="Local Ollama", temperature=0.3, max_tokens=120)
        code = compile(GUIDE_SNIPPET, "guide", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        namespace: dict[str, Any] = {}
        await eval(code, namespace)  # noqa: S307
        answer = await namespace["chat"]("Hello, how are you?")
        await namespace["llm"].aclose()
    assert answer == fake.reply.text
    sent = fake.requests[-1].body
    assert sent["options"]["temperature"] == 0.3
    assert sent["options"]["num_predict"] == 120
    assert sent["messages"] == [{"role": "user", "content": "Hello, how are you?"}]
    assert await sources(server, 1) == ["livekit"]


async def test_generate_overrides_system_and_usage(
    api: httpx.Client, manager: ConnectionManager
) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        create(api, anthropic_fields(fake), temperature=0.3, max_tokens=120)
        connection = await manager.get_connection("lk")
        async with connection.create_llm_instance(temperature=0.9) as llm:
            response = await llm.generate("Hi", system="Be brief.")
            sent = fake.requests[-1].body
            assert (sent["temperature"], sent["max_tokens"]) == (0.9, 120)
            assert sent["system"] == "Be brief."
            await llm.generate("Hi", temperature=0.1, max_tokens=5)
            sent = fake.requests[-1].body
            assert (sent["temperature"], sent["max_tokens"]) == (0.1, 5)
    assert response.text == fake.reply.text
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 9)


async def test_generate_raises_the_sdks_errors(
    api: httpx.Client, manager: ConnectionManager
) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        create(api, anthropic_fields(fake), use_in_livekit=False)
        (connection,) = await manager.get_connections()
        async with connection.create_llm_instance() as llm:
            with pytest.raises(IntegrationNotEnabled) as refused:
                await llm.generate("Hi")
            assert refused.value.status == 403
            assert "not enabled for livekit" in refused.value.message
            assert fake.requests == []

            enabled = api.patch(f"/api/connections/{connection.id}", json={"use_in_livekit": True})
            assert enabled.status_code == 200, enabled.text
            fake.behaviour = Behaviour.server_error
            with pytest.raises(GatewayError) as failed:
                await llm.generate("Hi")
            assert failed.value.status == 502
            assert failed.value.code == "server_error"
    assert KEY not in str(failed.value)

    gone = ConnectionManager(api_url=f"http://127.0.0.1:{free_port()}/api")
    unreachable = Connection.from_api(
        api.get(f"/api/connections/{connection.id}").json(), gone, "livekit"
    )
    async with unreachable.create_llm_instance() as llm:
        with pytest.raises(ServerUnreachable, match="UMP_AI_API_URL"):
            await llm.generate("Hi")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("livekit_agent_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_agent_example_in_text_mode(
    api: httpx.Client, manager: ConnectionManager, server: Server
) -> None:
    example = load_example()
    with FakeOllama(api_key=None) as fake, FakeAnthropic(api_key=KEY) as other:
        create(api, anthropic_fields(other), name="not for livekit", use_in_livekit=False)
        create(api, ollama_fields(fake), name="for livekit")
        connection: Connection = await example.livekit_connection(manager)
        assert connection.name == "for livekit"
        session = example.build_session(connection)
        async with session:
            await session.start(example.Assistant())
            result: RunResult[None] = await session.run(user_input="Hello, how are you?")
            reply = result.expect.next_event().is_message(role="assistant").event().item
        await session.llm.aclose()
    assert reply.text_content == fake.reply.text
    assert system_prompt(fake) == example.INSTRUCTIONS
    assert other.requests == []
    assert await sources(server, 1) == ["livekit"]


async def test_the_example_says_when_no_connection_is_enabled(
    api: httpx.Client, manager: ConnectionManager
) -> None:
    example = load_example()
    with FakeOllama(api_key=None) as fake:
        create(api, ollama_fields(fake), use_in_livekit=False)
        with pytest.raises(RuntimeError, match="enabled for LiveKit"):
            await example.livekit_connection(manager)


@pytest.fixture
def direct() -> Iterator[FakeOpenAI]:
    """A fake standing in for the gateway itself, to see what reaches it."""
    with FakeOpenAI(api_key=None) as fake:
        yield fake


def gateway_connection(fake: FakeOpenAI, token: str | None = None) -> Connection:
    manager = ConnectionManager(api_url=f"{fake.url}/api", token=token)
    return Connection.from_api({"id": "c1", "name": "fake-model"}, manager, "livekit")


async def test_what_reaches_the_gateway(
    direct: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_WORKER_TOKEN", "lk-worker-credential")
    async with gateway_connection(direct).create_llm_instance() as llm:
        with fake_job_context():  # as in a hosted LiveKit job
            await llm.generate("Hi")
    async with gateway_connection(direct, token="ump-token-1").create_llm_instance() as llm:
        await llm.generate("Hi")
    (anonymous, with_token) = (r.headers for r in direct.requests)
    assert anonymous["x-ump-source"] == with_token["x-ump-source"] == "livekit"
    assert anonymous["authorization"] == "Bearer ump-no-token"
    assert with_token["authorization"] == "Bearer ump-token-1"
    assert anonymous["x-livekit-job-id"] == "fake-job"  # the job's other headers pass
    assert "lk-worker-credential" not in str(direct.requests)
    assert direct.requests[0].body["model"] == "fake-model"


async def test_a_call_past_its_timeout_is_a_gateway_error(direct: FakeOpenAI) -> None:
    direct.behaviour = Behaviour.hang
    async with gateway_connection(direct).create_llm_instance(timeout=0.5) as llm:
        with pytest.raises(GatewayError, match=r"did not answer within 0\.5 s") as late:
            await llm.generate("Hi")
    assert late.value.code == "timeout"
