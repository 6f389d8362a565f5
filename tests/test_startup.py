"""What a started server carries: no module it does not use, and a start-up heap the garbage
collector leaves alone (throughput at 64 gateway connections fell below that at 8 while full
collections walked the start-up heap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import cli_env

PROBE = """
import asyncio, gc, json, sys
from ump_llm_connections.api.app import create_app
from ump_llm_connections.config import Settings

async def main():
    app = create_app(Settings(health_monitor=False))
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.3)  # the background loops' first rounds (the spot reconciler's)
        state = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}
        state["modules"] = sorted({name.split(".")[0] for name in sys.modules})
        print(json.dumps(state))

asyncio.run(main())
"""


def _started(tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=cli_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    state: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return state


def test_started_server_freezes_its_startup_heap(tmp_path: Path) -> None:
    state = _started(tmp_path)
    assert state["frozen"] > 50_000  # the modules, schemas and routes of a started server
    assert state["threshold"][0] >= 10_000


def test_server_without_redis_or_aws_loads_neither(tmp_path: Path) -> None:
    modules = _started(tmp_path)["modules"]
    assert "ump_llm_connections" in modules
    assert "redis" not in modules  # ~10 MB of peak RSS for a limiter it does not use
    # No UMP_SPOT_REGIONS and no spot instance recorded: the reconciler never loads AWS.
    assert "boto3" not in modules
    assert "botocore" not in modules
