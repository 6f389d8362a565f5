"""Usage rows the database could not take, kept in a local append-only file until it can.

One JSON object a line (``usage-spill.jsonl`` in the data dir, created 0600). A batch is
appended in one write and synced. Reading skips a line that is not whole (the process died
while writing it) or not readable, with a warning, so the rest is never held back by it. Every
row carries its ``event_id``: a row replayed twice (the process died between committing the
replay and removing the file) is recognised and stored once.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

IDS = ("event_id", "connection_id", "pool_id", "token_id")
REQUIRED = ("event_id", "connection_id", "created_at", "source", "success")
OPTIONAL = (
    "pool_id",
    "token_id",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "error_kind",
    "cost",
)


class SpillFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` and sync them to disk; raises ``OSError`` (a full disk, say)."""
        data = b"".join(orjson.dumps(row, default=str) + b"\n" for row in rows)  # asyncpg UUIDs
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """The rows in the file, each once."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        rows: dict[Any, dict[str, Any]] = {}
        lines = data.split(b"\n")
        if lines[-1]:  # no newline at the end: the last write did not finish
            log.warning(
                "%s: skipping an unfinished last line (%d bytes): the process stopped while "
                "writing it",
                self.path,
                len(lines[-1]),
            )
        for number, line in enumerate(lines[:-1], 1):
            try:
                row = _row(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("%s: skipping unreadable line %d (%s)", self.path, number, exc)
                continue
            rows[row["event_id"]] = row
        return list(rows.values())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _row(raw: Any) -> dict[str, Any]:
    """A row as the usage table takes it; ``KeyError`` if a required field is missing."""
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    row = {key: raw[key] for key in REQUIRED} | {key: raw.get(key) for key in OPTIONAL}
    for key in IDS:
        row[key] = uuid.UUID(row[key]) if row[key] is not None else None
    if row["event_id"] is None or row["connection_id"] is None:
        raise ValueError("event_id and connection_id are required")
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row
