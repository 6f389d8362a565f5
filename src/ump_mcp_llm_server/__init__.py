"""The MCP server: one tool per LLM connection and pool that is enabled for MCP."""
