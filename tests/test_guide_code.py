"""The guide's automation code, copied from the guide, runs unchanged against the live server;
so does examples/ticket_workflow.py, the same workflow as a program."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, cli_env
from tests.test_sdk import wait_for_sources
from tests.upstreams.anthropic import FakeAnthropic

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-guide-code-0123456789abcdef"

# "Usage in Automation Workflows" > "Example Workflow", verbatim.
AUTOMATION_SNIPPET = """
# In automation workflow
from ump_llm_connections import get_connection

async def process_ticket(ticket_id: str):
    # Get LLM connection
    llm = await get_connection("Claude Sonnet", use_in_automation=True)

    # Analyze ticket
    ticket_data = await get_ticket(ticket_id)

    response = await llm.generate(
        prompt=f"Analyze this support ticket and suggest a solution:\\n{ticket_data}",
        max_tokens=1000
    )

    # Update ticket with AI suggestion
    await update_ticket(ticket_id, ai_suggestion=response.text)
"""


@pytest.fixture
def claude(api: httpx.Client) -> Iterator[tuple[FakeAnthropic, dict[str, Any]]]:
    with FakeAnthropic(api_key=KEY, models=("claude-sonnet-4-5",)) as fake:
        made = api.post(
            "/api/connections",
            json={
                "name": "Claude Sonnet",
                "connection_type": "anthropic",
                "base_url": fake.url + "/v1",
                "model_name": "claude-sonnet-4-5",
                "api_key": KEY,
                "use_in_automation": True,
                "is_active": True,
            },
        )
        assert made.status_code == 201, made.text
        yield fake, made.json()


async def test_the_guides_automation_workflow_runs_as_written(
    server: Server,
    claude: tuple[FakeAnthropic, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, _ = claude
    monkeypatch.setenv("UMP_AI_API_URL", f"{server.url}/api")
    tickets = {"T-1": {"subject": "Login fails", "body": "I cannot sign in since Monday."}}

    async def get_ticket(ticket_id: str) -> dict[str, str]:
        return tickets[ticket_id]

    async def update_ticket(ticket_id: str, **fields: str) -> None:
        tickets[ticket_id].update(fields)

    namespace: dict[str, Any] = {"get_ticket": get_ticket, "update_ticket": update_ticket}
    exec(compile(textwrap.dedent(AUTOMATION_SNIPPET), "guide", "exec"), namespace)  # noqa: S102
    await namespace["process_ticket"]("T-1")

    assert tickets["T-1"]["ai_suggestion"] == fake.reply.text
    sent = fake.requests[-1].body
    assert sent["max_tokens"] == 1000
    assert "I cannot sign in since Monday." in sent["messages"][-1]["content"]


def test_the_ticket_workflow_example_updates_the_ticket(
    server: Server, claude: tuple[FakeAnthropic, dict[str, Any]], tmp_path: Path
) -> None:
    fake, connection = claude
    tickets = tmp_path / "tickets.json"
    tickets.write_text(json.dumps({"T-1001": {"subject": "Refund", "body": "Charged twice."}}))
    env = cli_env(tmp_path, UMP_AI_API_URL=f"{server.url}/api")
    done = subprocess.run(
        [sys.executable, "examples/ticket_workflow.py", "T-1001", "--tickets", str(tickets)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == fake.reply.text
    assert json.loads(tickets.read_text())["T-1001"]["ai_suggestion"] == fake.reply.text
    assert wait_for_sources(server, connection["id"], 1) == ["automation"]

    missing = subprocess.run(
        [sys.executable, "examples/ticket_workflow.py", "T-1001", "--connection", "Nope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "error: no connection or pool is named 'Nope'" in missing.stderr
