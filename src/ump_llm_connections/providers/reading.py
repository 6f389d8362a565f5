"""Reading upstream bodies without trusting their size: whole bodies, lines, server-sent
events and NDJSON, each stopped with ``BodyTooLarge`` as soon as it passes its limit, so an
endless or huge answer never grows the server past what it allows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson


class BodyTooLarge(Exception):
    """An upstream body (or one event of a stream) passed the most we read."""


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body; ``BodyTooLarge`` as soon as it passes ``limit`` bytes (none held past)."""
    length = response.content_length
    if length is not None and length > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    content = response.content
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def lines(response: aiohttp.ClientResponse, limit: int) -> AsyncIterator[bytes]:
    """The body's lines without their ``\\n``; ``BodyTooLarge`` for one past ``limit`` bytes."""
    content = response.content
    head: list[bytes] = []  # the start of a line that has not ended yet
    size = 0
    while chunk := await content.readany():
        found = chunk.split(b"\n")
        rest = found.pop()
        if found:
            if head:
                head.append(found[0])
                found[0] = b"".join(head)
                head, size = [], 0
            for line in found:
                if len(line) > limit:
                    raise BodyTooLarge
                yield line
        if rest:
            size += len(rest)
            if size > limit:
                raise BodyTooLarge
            head.append(rest)
    if head:
        yield b"".join(head)


async def sse_events(
    response: aiohttp.ClientResponse, limit: int
) -> AsyncIterator[tuple[str | None, str]]:
    """Server-sent events as (event name, data) pairs; none larger than ``limit`` bytes."""
    event: str | None = None
    data: list[str] = []
    size = 0
    async for raw in lines(response, limit):
        line = raw.decode("utf-8").removesuffix("\r")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, size = None, [], 0
        elif line.startswith("data:"):
            size += len(line)
            if size > limit:  # one event of many data lines
                raise BodyTooLarge
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, "\n".join(data)


async def ndjson_lines(response: aiohttp.ClientResponse, limit: int) -> AsyncIterator[Any]:
    """One parsed JSON value per non-empty line; none larger than ``limit`` bytes."""
    async for raw in lines(response, limit):
        if raw.strip():
            yield orjson.loads(raw)
