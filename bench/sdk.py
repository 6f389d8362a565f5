"""What the SDK and the MCP server add over calling the gateway directly.

    .venv/bin/python bench/sdk.py [--calls 300] [--rounds 3]
    make bench-sdk

Same setup as bench/gateway.py (whose helpers it uses): the fake OpenAI upstream is a private
nginx on CPU 1, ``ump-llm serve`` runs as ``make run`` starts it on CPU 0 with one connection
``bench`` (enabled for MCP), and the clients run in this process, on CPU 1. Three ways of making
the same chat completion, one call at a time, in interleaved rounds so that a slow spell of the
machine lands on all of them:

* direct: the official ``openai`` client on the gateway, as any OpenAI-compatible client would;
* SDK: ``connection.generate(prompt=...)`` (the SDK wraps the same ``openai`` client);
* MCP: ``tools/call`` of ``query_bench`` over stdio to ``python -m ump_mcp_llm_server``, with
  the official ``mcp`` client session (the tool makes the SDK call above).

Also the cost of ``import ump_llm_connections`` in a fresh interpreter (``-X importtime``, the
median of five), which must stay small: agents and scripts import it at start-up.

Targets: the SDK adds < 1 ms to the direct p50, an MCP ``tools/call`` round trip < 5 ms, the
import takes < 300 ms. Exit status 1 when a target is missed, 2 when the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway import (  # bench/ holds scripts, not a package
    LOAD_CPU,
    Children,
    ensure_debian_tools,
    http,
    start_gateway,
    start_nginx,
)

SDK_TARGET_MS = 1.0
MCP_TARGET_MS = 5.0
IMPORT_TARGET_MS = 300.0
PROMPT = "Hello, how are you?"

Call = Callable[[], Awaitable[object]]


async def timed(call: Call, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(base: str, calls: int, rounds: int) -> dict[str, float]:
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from openai import AsyncOpenAI

    from ump_llm_connections import ConnectionManager

    direct_client = AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    manager = ConnectionManager(api_url=f"{base}/api")
    connection = await manager.get_connection("bench", use_in_mcp=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ump_mcp_llm_server"],
        env={**os.environ, "UMP_AI_API_URL": f"{base}/api"},
    )

    async def direct() -> object:
        return await direct_client.chat.completions.create(
            model="bench",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"X-UMP-Source": "mcp"},
        )

    async def sdk() -> object:
        return await connection.generate(prompt=PROMPT)

    samples: dict[str, list[float]] = {"direct": [], "sdk": [], "mcp": []}
    async with (
        stdio_client(params, errlog=sys.stderr) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = [tool.name for tool in (await session.list_tools()).tools]
        if "query_bench" not in names:
            raise RuntimeError(f"the MCP server lists no query_bench tool: {names}")

        async def mcp() -> object:
            result = await session.call_tool("query_bench", {"prompt": PROMPT})
            if result.is_error:
                raise RuntimeError(f"tools/call failed: {result.content}")
            return result

        calls_by_name: dict[str, Call] = {"direct": direct, "sdk": sdk, "mcp": mcp}
        for call in calls_by_name.values():  # warm up every path
            await timed(call, 20)
        for _ in range(rounds):
            for name, call in calls_by_name.items():
                samples[name] += await timed(call, calls)
    await direct_client.close()
    await manager.aclose()
    return {name: statistics.median(values) for name, values in samples.items()}


def import_ms() -> float:
    """``import ump_llm_connections`` in a fresh interpreter, as ``-X importtime`` counts it."""
    samples = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import ump_llm_connections"],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = done.stderr.splitlines()
        line = next(row for row in rows if row.rstrip().endswith("| ump_llm_connections"))
        samples.append(int(line.split("|")[1]) / 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per path per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)
    ensure_debian_tools()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="ump-bench-sdk-") as folder:
            tmp = Path(folder)
            nginx, _ = start_nginx(children, tmp)
            gateway, _ = start_gateway(children, tmp, nginx)
            status, _, body = http(
                "PATCH", f"{gateway.base}/api/connections/bench", {"use_in_mcp": True}
            )
            if status != 200:
                raise RuntimeError(f"enabling MCP on the bench connection: {status} {body!r}")
            os.sched_setaffinity(0, {int(LOAD_CPU)})
            p50 = asyncio.run(measure(gateway.base, args.calls, args.rounds))
    except (RuntimeError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        children.stop_all()
    imported = import_ms()
    sdk_added = p50["sdk"] - p50["direct"]
    mcp_added = p50["mcp"] - p50["direct"]
    print(f"{'path':<10}{'p50 ms':>10}{'added ms':>10}{'target':>10}")
    print(f"{'direct':<10}{p50['direct']:>10.3f}{'':>10}{'':>10}")
    rows = (("sdk", sdk_added, SDK_TARGET_MS), ("mcp", mcp_added, MCP_TARGET_MS))
    missed = False
    for name, added, target in rows:
        verdict = "PASS" if added < target else "FAIL"
        missed |= verdict == "FAIL"
        print(f"{name:<10}{p50[name]:>10.3f}{added:>10.3f}{f'< {target:g}':>10} {verdict}")
    verdict = "PASS" if imported < IMPORT_TARGET_MS else "FAIL"
    missed |= verdict == "FAIL"
    print(f"{'import':<10}{imported:>10.1f}{'':>10}{f'< {IMPORT_TARGET_MS:g}':>10} {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
