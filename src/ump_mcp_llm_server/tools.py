"""The tools' definitions and their arguments: ``query_<slug>`` for each connection and pool,
``list_llm_connections`` and ``test_llm_connection``. Arguments are checked against the same
bounds their JSON Schema announces."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from ump_llm_connections import Connection

__all__ = [
    "LIST_TOOL",
    "MAX_PROMPT_CHARS",
    "MAX_TOKENS",
    "STATIC_TOOLS",
    "TEST_TOOL",
    "QueryArgs",
    "TestArgs",
    "describe",
    "error_result",
    "json_text",
    "query_tool",
    "text_result",
]

LIST_TOOL = "list_llm_connections"
TEST_TOOL = "test_llm_connection"
MAX_PROMPT_CHARS = 1_000_000
MAX_TOKENS = 1_000_000
MAX_DESCRIPTION_CHARS = 300


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryArgs(_Args):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    system: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)


class TestArgs(_Args):
    name_or_id: str = Field(min_length=1, max_length=200)
    prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


QUERY_SCHEMA = _object(
    {
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PROMPT_CHARS,
            "description": "The prompt to send",
        },
        "system": {
            "type": "string",
            "maxLength": MAX_PROMPT_CHARS,
            "description": "A system prompt (instructions for the model)",
        },
        "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_TOKENS,
            "description": "The most tokens to generate (default: the connection's)",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 2,
            "description": "Sampling temperature (default: the connection's)",
        },
    },
    ["prompt"],
)

STATIC_TOOLS = [
    types.Tool(
        name=LIST_TOOL,
        description=(
            "List the LLM connections and pools enabled for MCP: their tool name, model, "
            "status and tags"
        ),
        input_schema=_object({}, []),
    ),
    types.Tool(
        name=TEST_TOOL,
        description=(
            "Test an MCP-enabled LLM connection with a short prompt: the latency and a preview "
            "of the reply, or what went wrong and what to check"
        ),
        input_schema=_object(
            {
                "name_or_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "The connection's name or id",
                },
                "prompt": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 10_000,
                    "description": 'The prompt (default "Hello, how are you?")',
                },
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
            },
            ["name_or_id"],
        ),
    ),
]


def query_tool(name: str, connection: Connection) -> types.Tool:
    """``Query OpenAI GPT-4 (gpt-4o)``, then the connection's own description."""
    model = connection.model_name or connection.kind
    description = f"Query {connection.name} ({model})"
    if connection.description:
        description += ": " + connection.description[:MAX_DESCRIPTION_CHARS]
    return types.Tool(
        name=name, title=connection.name, description=description, input_schema=QUERY_SCHEMA
    )


def describe(tool: str, connection: Connection) -> dict[str, Any]:
    """One entry of ``list_llm_connections``."""
    return {
        "tool": tool,
        "name": connection.name,
        "id": connection.id,
        "kind": connection.kind,
        "connection_type": connection.connection_type,
        "model": connection.model_name,
        "status": connection.status,
        "tags": connection.tags,
        "description": connection.description,
    }


def text_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
