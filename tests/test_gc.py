"""After start-up the server keeps the garbage collector off its request path: what start-up
built is frozen out of collections, and young collections are rare (throughput at 64 gateway
connections fell below that at 8 while full collections walked the start-up heap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

PROBE = """
import asyncio, gc, json
from ump_llm_connections.api.app import create_app
from ump_llm_connections.config import Settings

async def main():
    app = create_app(Settings(health_monitor=False))
    async with app.router.lifespan_context(app):
        print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))

asyncio.run(main())
"""


def test_started_server_freezes_its_startup_heap(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=cli_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["frozen"] > 50_000  # the modules, schemas and routes of a started server
    assert state["threshold"][0] >= 10_000
