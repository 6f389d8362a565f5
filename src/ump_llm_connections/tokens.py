"""API tokens: made, listed and revoked here, and checked on every request from memory.

A token reads ``ump_<key id>_<secret>``: ``ump_`` lets secret scanners find a leaked one, the key
id (12 hex characters, public, shown in lists) finds its row, and the secret is 32 random bytes.
Only the SHA-256 of the whole token is stored: a token is high-entropy, so a fast hash is as
safe as a slow one, and it keeps the check off the request's critical path.

``TokenCache`` holds every token's hash and caller in memory: a request costs one hash and one
dictionary lookup, never a database read. It reloads when the table changes — at once for
changes made through this process, and within ``refresh_s`` for those made elsewhere (the CLI,
another replica): that is how a revoked token stops working on every replica. Expiry is checked
against the clock on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from ump_llm_connections.background import periodic
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import SecretText, Source
from ump_llm_connections.domain.access import (
    TOKEN_PREFIX,
    Principal,
    Role,
    TokenCreate,
    TokenCreated,
    TokenRead,
    is_expired,
)
from ump_llm_connections.errors import NotFound
from ump_llm_connections.store.tables import TokenRow
from ump_llm_connections.store.tokens import TokenStore

__all__ = [
    "FAILURES_PER_MINUTE",
    "Check",
    "FailureThrottle",
    "TokenCache",
    "TokenService",
    "hash_token",
    "new_token",
]

log = logging.getLogger(__name__)

KEY_ID_CHARS = 12
TOKEN_LENGTH = len(TOKEN_PREFIX) + KEY_ID_CHARS + 1 + 43  # 32 bytes in url-safe base64
FAILURES_PER_MINUTE = 10  # failed sign-ins one client address gets before a 429
TOUCH_EVERY_S = 60.0  # how often last_used_at is written (batched)
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


def hash_token(token: SecretText) -> str:
    return hashlib.sha256(token.reveal().encode()).hexdigest()


def new_token() -> tuple[str, SecretText]:
    """A new token and its public key id (an API token, or a spot instance's heartbeat token)."""
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    return key_id, SecretText(f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}")


def _principal(row: TokenRow) -> Principal:
    return Principal(
        token_id=row.id,
        name=row.name,
        role=Role(row.role),
        team=row.team,
        sources=frozenset(Source(s) for s in row.sources),
        rpm_limit=row.rpm_limit,
        monthly_budget=row.monthly_budget,
    )


def token_read(row: TokenRow, now: datetime) -> TokenRead:
    return TokenRead(
        id=row.id,
        key_id=row.key_id,
        name=row.name,
        role=Role(row.role),
        team=row.team,
        sources=[Source(s) for s in row.sources],
        expires_at=row.expires_at,
        rpm_limit=row.rpm_limit,
        monthly_budget=row.monthly_budget,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        active=row.revoked_at is None and not is_expired(row.expires_at, now),
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    token_hash: str
    principal: Principal
    expires_at: datetime | None
    revoked: bool


def _lapsed(entry: _Entry, now: datetime) -> str | None:
    """Why a known token no longer lets its caller in; None while it does."""
    if entry.revoked:
        return "the token was revoked"
    if is_expired(entry.expires_at, now):
        return "the token has expired"
    return None


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of checking a presented token: the caller, or why not (``reason``)."""

    principal: Principal | None
    reason: str = ""


class TokenCache:
    def __init__(self, store: TokenStore, *, refresh_s: float = 5.0) -> None:
        self._store = store
        self._entries: dict[str, _Entry] = {}
        self._by_id: dict[str, _Entry] = {}
        self._version: tuple[int, object] | None = None
        self._used: set[uuid.UUID] = set()
        self._watcher = periodic("token cache refresh", self._reload_if_changed, refresh_s)
        self._toucher = periodic("token last-use write", self._touch, TOUCH_EVERY_S)

    @property
    def any(self) -> bool:
        """Whether any token exists (revoked ones included): then every request needs one."""
        return bool(self._entries)

    async def start(self) -> None:
        await self.reload()
        self._watcher.start()
        self._toucher.start()

    async def stop(self) -> None:
        await self._watcher.stop()
        await self._toucher.stop()
        await self._touch()

    async def reload(self) -> None:
        version = await self._store.version()
        rows = await self._store.all()
        self._entries = {
            row.key_id: _Entry(
                row.token_hash, _principal(row), row.expires_at, bool(row.revoked_at)
            )
            for row in rows
        }
        self._by_id = {str(e.principal.token_id): e for e in self._entries.values()}
        self._version = version

    def principal(self, token_id: str) -> Principal | None:
        """The caller a token (by its id, as an ``owner`` records it) stands for."""
        entry = self._by_id.get(token_id)
        return entry.principal if entry is not None else None

    def lapsed(self, caller: Principal, now: datetime) -> str | None:
        """Why a caller let in earlier may no longer be (revoked, expired, deleted); None while
        it may. For what outlives its request's check: an open event stream."""
        if caller.token_id is None:
            return None  # the open server's local user
        entry = self._by_id.get(str(caller.token_id))
        return "the token no longer exists" if entry is None else _lapsed(entry, now)

    async def _reload_if_changed(self) -> None:
        if await self._store.version() != self._version:
            await self.reload()

    def check(self, token: SecretText, now: datetime) -> Check:
        """Who presents ``token``; the digest is compared in constant time, and an unknown key
        id costs the same hash and comparison as a known one."""
        plain = token.reveal()
        key_id = plain[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + KEY_ID_CHARS]
        well_formed = len(plain) == TOKEN_LENGTH and plain.startswith(TOKEN_PREFIX)
        entry = self._entries.get(key_id) if well_formed else None
        expected = entry.token_hash if entry is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_token(token), expected)
        if entry is None or not matches:
            return Check(None, "the token is not valid")
        if (refused := _lapsed(entry, now)) is not None:
            return Check(None, refused)
        self._used.add(entry.principal.token_id)  # type: ignore[arg-type]
        return Check(entry.principal)

    async def _touch(self) -> None:
        used, self._used = self._used, set()
        await self._store.touch(used, utcnow())


class TokenService:
    """Making, listing and revoking tokens (the CLI and ``/api/tokens``)."""

    def __init__(self, store: TokenStore, cache: TokenCache | None = None) -> None:
        self._store = store
        self._cache = cache  # the server's: reloaded at once after a change made here

    async def create(self, data: TokenCreate, *, created_by: str | None) -> TokenCreated:
        key_id, token = new_token()
        now = utcnow()
        row = TokenRow(
            id=uuid.uuid4(),
            key_id=key_id,
            token_hash=hash_token(token),
            name=data.name,
            role=data.role.value,
            team=data.team,
            sources=sorted({s.value for s in data.sources}),
            expires_at=data.expires_at,
            rpm_limit=data.rpm_limit,
            monthly_budget=data.monthly_budget,
            created_at=now,
            created_by=created_by,
            updated_at=now,
        )
        await self._store.add(row)
        await self._changed()
        log.info("created %s token %r (%s)", row.role, row.name, row.key_id)
        return TokenCreated(**token_read(row, now).model_dump(), token=token.reveal())

    async def list(self) -> list[TokenRead]:
        now = utcnow()
        return [token_read(row, now) for row in await self._store.all()]

    async def get(self, ref: str) -> TokenRead:
        row = await self._row(ref)
        return token_read(row, utcnow())

    async def revoke(self, ref: str) -> TokenRead:
        row = await self._store.revoke((await self._row(ref)).id, utcnow())
        if row is None:
            raise NotFound(f"no token '{ref[:100]}'", field="token_id")
        await self._changed()
        log.info("revoked token %r (%s)", row.name, row.key_id)
        return token_read(row, utcnow())

    async def _row(self, ref: str) -> TokenRow:
        """A token by its id (UUID) or its key id (the 12 characters after ``ump_``)."""
        ref = ref.strip()
        row: TokenRow | None = None
        try:
            row = await self._store.get(uuid.UUID(ref))
        except ValueError:
            key_id = ref.removeprefix(TOKEN_PREFIX)[:KEY_ID_CHARS]
            if len(key_id) == KEY_ID_CHARS:
                row = await self._store.find_by_key_id(key_id)
        if row is None:
            raise NotFound(
                f"no token '{ref[:100]}': `ump-llm tokens list` shows them", field="token_id"
            )
        return row

    async def _changed(self) -> None:
        if self._cache is not None:
            await self._cache.reload()


class FailureThrottle:
    """Failed sign-ins per client address, in one-minute windows: past ``limit``, the address is
    refused (429) until the window ends, whatever it presents."""

    def __init__(self, limit: int = FAILURES_PER_MINUTE) -> None:
        self._limit = limit
        self._window = 0
        self._failures: dict[str, int] = {}

    def _current(self) -> tuple[float, int]:
        now = time.time()
        window = int(now // 60)
        if window != self._window:
            self._window, self._failures = window, {}
        return now, window

    def retry_after(self, client: str) -> float | None:
        """Seconds until this address may try again, or None when it may now."""
        now, window = self._current()
        if self._failures.get(client, 0) < self._limit:
            return None
        return (window + 1) * 60 - now

    def failed(self, client: str) -> int:
        """Count a failure; returns the address's failures in this window."""
        self._current()
        count = self._failures.get(client, 0) + 1
        self._failures[client] = count
        return count
