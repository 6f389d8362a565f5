"""Key rotation: every stored secret re-encrypted under the primary server key, while servers
keep serving.

A value is rewritten only when it names a key other than the primary, so a run that was
interrupted (its batches are committed one by one) picks up where it stopped, and a finished
one finds nothing to do. The plaintext and the row's ``updated_at`` do not change. A pass scans
the encrypted columns and rewrites the rows behind in batches; passes repeat until one finds
nothing, since a server that has not yet seen the new key file may still write a row under the
old key (it looks at the file before each encryption, so that window is short).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.secrets import KeyBox, is_encrypted, key_id_of
from ump_llm_connections.store.rotation import ConnectionSecrets, RotationStore, WebhookSecret

__all__ = ["BATCH_SIZE", "MAX_PASSES", "KeyRotation", "Rotated"]

BATCH_SIZE = 50
MAX_PASSES = 5

Progress = Callable[[int, int], None]  # rows done, rows to do in all


@dataclass(frozen=True, slots=True)
class Rotated:
    """What a run rewrote."""

    key_id: str
    connections: int
    webhooks: int

    @property
    def rows(self) -> int:
        return self.connections + self.webhooks


class KeyRotation:
    def __init__(self, store: RotationStore, keys: KeyBox, *, batch_size: int = BATCH_SIZE) -> None:
        self._store = store
        self._keys = keys
        self._batch_size = batch_size

    async def census(self) -> dict[str, int]:
        """How many rows hold a value under each key id (a row counts once per key)."""
        counts: Counter[str] = Counter()
        for connection in await self._store.connections():
            counts.update(set(_key_ids(connection)))
        for webhook in await self._store.webhooks():
            counts[key_id_of(webhook.secret)] += 1
        return dict(counts)

    async def behind(self) -> dict[str, int]:
        """The census without the primary key: what a rotation still has to rewrite."""
        return {k: n for k, n in (await self.census()).items() if k != self._keys.key_id}

    async def run(self, progress: Progress, *, settle_s: float = 0.0) -> Rotated:
        """Rewrite every row not on the primary key; ``progress`` hears after each batch.

        The scan that finds nothing left comes at least ``settle_s`` after the start, so that a
        write a server began under the old key just before the key changed lands before it.
        """
        settled = time.monotonic() + settle_s
        done = connections = webhooks = 0
        for _ in range(MAX_PASSES):
            stale_connections = [c.id for c in await self._store.connections() if self._stale(c)]
            stale_webhooks = [w.id for w in await self._store.webhooks() if self._stale_webhook(w)]
            if not stale_connections and not stale_webhooks:
                wait = settled - time.monotonic()
                if wait <= 0:
                    return Rotated(self._keys.key_id, connections, webhooks)
                await asyncio.sleep(wait)
                continue
            total = done + len(stale_connections) + len(stale_webhooks)
            for batch in _batches(stale_connections, self._batch_size):
                connections += await self._store.reseal_connections(batch, self._reseal)
                done += len(batch)
                progress(done, total)
            for batch in _batches(stale_webhooks, self._batch_size):
                webhooks += await self._store.reseal_webhooks(batch, self._reseal_webhook)
                done += len(batch)
                progress(done, total)
        left = await self.behind()
        raise ConfigurationError(
            f"rows keep appearing under server key {', '.join(sorted(left))} after "
            f"{MAX_PASSES} passes: a server still encrypts with it. Give every server the new "
            "key (restart those configured by UMP_SECRET_KEY), then run this again"
        )

    def _stale(self, row: ConnectionSecrets) -> bool:
        return any(key_id != self._keys.key_id for key_id in _key_ids(row))

    def _stale_webhook(self, row: WebhookSecret) -> bool:
        return key_id_of(row.secret) != self._keys.key_id

    def _reseal(self, row: ConnectionSecrets) -> ConnectionSecrets | None:
        if not self._stale(row):
            return None  # rewritten meanwhile (by the API, or another run)
        context = str(row.id)
        key = None if row.api_key is None else self._keys.reencrypt(row.api_key, context=context)
        headers = {
            name: self._keys.reencrypt(value, context=context) if is_encrypted(value) else value
            for name, value in row.headers.items()
        }
        return ConnectionSecrets(row.id, key, headers)

    def _reseal_webhook(self, row: WebhookSecret) -> WebhookSecret | None:
        if not self._stale_webhook(row):
            return None
        return WebhookSecret(row.id, self._keys.reencrypt(row.secret, context=str(row.id)))


def _key_ids(row: ConnectionSecrets) -> list[str]:
    ids = [key_id_of(v) for v in row.headers.values() if is_encrypted(v)]
    if row.api_key is not None:
        ids.append(key_id_of(row.api_key))
    return ids


def _batches(ids: Sequence[uuid.UUID], size: int) -> list[Sequence[uuid.UUID]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
