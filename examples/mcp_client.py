"""Connect to the MCP server the way an MCP client does, from ``mcp-config.json``: start it over
stdio, list its tools, call one.

    python examples/mcp_client.py                          # list the tools
    python examples/mcp_client.py --tool query_local_ollama --prompt "Hello"

The server entry's ``env`` is used as written, except what ``--api-url`` and the environment's
``UMP_AI_API_URL`` / ``UMP_API_TOKEN`` say; ``python`` is this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

CONFIG = Path(__file__).with_name("mcp-config.json")


def server_parameters(config: Path, name: str, api_url: str | None) -> StdioServerParameters:
    entry = json.loads(config.read_text())["mcpServers"][name]
    env = dict(entry.get("env") or {})
    for variable in ("UMP_AI_API_URL", "UMP_API_TOKEN"):
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
    if api_url:
        env["UMP_AI_API_URL"] = api_url
    command = sys.executable if entry["command"] == "python" else entry["command"]
    return StdioServerParameters(command=command, args=entry.get("args", []), env=env)


async def run(args: argparse.Namespace) -> int:
    params = server_parameters(args.config, args.server, args.api_url)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for tool in (await session.list_tools()).tools:
            print(f"{tool.name}: {tool.description}")
        if not args.tool:
            return 0
        arguments = {"prompt": args.prompt} if args.tool.startswith("query_") else {}
        result = await session.call_tool(args.tool, arguments)
        reply = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
        print(f"\n{args.tool} -> {'error: ' if result.is_error else ''}{reply}")
        return 1 if result.is_error else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="an mcp-config.json")
    parser.add_argument("--server", default="llm", help="its mcpServers entry (default llm)")
    parser.add_argument("--api-url", help="the server's REST API (overrides the config's)")
    parser.add_argument("--tool", help="a tool to call after listing them")
    parser.add_argument("--prompt", default="Hello, how are you?", help="for a query_ tool")
    sys.exit(anyio.run(run, parser.parse_args()))


if __name__ == "__main__":
    main()
