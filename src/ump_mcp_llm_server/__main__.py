"""``python -m ump_mcp_llm_server``: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ump_llm_connections import ConnectionManager
from ump_mcp_llm_server.catalog import Catalogs

DEFAULT_REFRESH_S = 30.0

DESCRIPTION = """\
An MCP server with one tool per LLM connection enabled for MCP (and one per pool) of an
ump-llm-connections server: query_<name> sends a prompt and answers the reply. Also
list_llm_connections and test_llm_connection. The tool list follows the registry.

transports:
  stdio  (default) the protocol on stdin/stdout, as MCP clients start it from their
         mcp-config.json; logs go to stderr
  http   streamable HTTP at http://HOST:PORT/mcp; a request's "Authorization: Bearer"
         token is used for its calls (else UMP_API_TOKEN)

environment:
  UMP_AI_API_URL     the server's REST API (default http://localhost:8002/api)
  UMP_API_TOKEN      a token of that server, when it has tokens (ump-llm tokens create)
  UMP_MCP_REFRESH_S  seconds between re-listings besides the registry's events (default 30)
  UMP_LOG_LEVEL      debug, info, warning (default), error
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ump_mcp_llm_server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="http: address to listen on")
    parser.add_argument("--port", type=int, default=8003, help="http: port (default 8003)")
    args = parser.parse_args(argv)
    level = os.environ.get("UMP_LOG_LEVEL", "warning").upper()
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        refresh_s = float(os.environ.get("UMP_MCP_REFRESH_S") or DEFAULT_REFRESH_S)
    except ValueError:
        parser.error("UMP_MCP_REFRESH_S must be a number of seconds")
    if refresh_s <= 0:
        parser.error("UMP_MCP_REFRESH_S must be more than 0")
    api_url = os.environ.get("UMP_AI_API_URL")
    try:
        ConnectionManager(api_url)
    except ValueError as exc:
        parser.error(str(exc))
    catalogs = Catalogs(api_url, os.environ.get("UMP_API_TOKEN"), refresh_s=refresh_s)
    if args.transport == "stdio":
        import anyio

        from ump_mcp_llm_server.server import run_stdio

        anyio.run(run_stdio, catalogs)
        return
    import uvicorn

    from ump_mcp_llm_server.server import build_server

    app = build_server(catalogs).streamable_http_app(host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level=level.lower())


if __name__ == "__main__":
    main()
