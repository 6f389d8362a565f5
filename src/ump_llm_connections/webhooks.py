"""Webhooks: connection events POSTed, signed, to the URLs that asked for them.

    POST <url>
    Content-Type: application/json
    X-UMP-Event: connection.created
    X-UMP-Timestamp: 1764000000
    X-UMP-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>", keyed by the secret>
    X-UMP-Delivery: evt_…                     (the event's id: the same on every retry)

    {"id": "evt_…", "type": "connection.created", "created_at": "…", "data": {…}}

The dispatcher is an ``EventBus`` subscriber that only schedules: one task per webhook that wants
the event, so neither the bus nor the request that published the event waits on a receiver. A
non-2xx answer or a network error is retried with exponential backoff (``backoff_s`` times 1, 2, 4,
8; five attempts in all); every attempt is a row in ``llm_webhook_deliveries``. On shutdown the
deliveries under way get a short grace period (no new retries), then are cancelled.

Secrets are encrypted at rest (the webhook's id as context) and shown once, when created; they
never reach a log line, an error message or a delivery row.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import (
    WEBHOOK_ALL_EVENTS,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookList,
    WebhookRead,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal, Role
from ump_llm_connections.domain.network import check_upstream_allowed
from ump_llm_connections.errors import ConfigurationError, InvalidInput, NotFound
from ump_llm_connections.events import Event, EventBus
from ump_llm_connections.secrets import KeyBox
from ump_llm_connections.store.tables import WebhookDeliveryRow, WebhookRow
from ump_llm_connections.store.webhooks import WebhookStore

log = logging.getLogger(__name__)

ATTEMPTS = 5
TIMEOUT_S = 10.0
GRACE_S = 3.0
MAX_ERROR_CHARS = 500
MAX_DELIVERY_PAGE = 500


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-UMP-Signature`` value: HMAC-SHA256 of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def mask_secret(secret: str) -> str:
    return f"…{secret[-4:]}"


def _where(url: str) -> str:
    """Scheme and host of a URL, for logs: paths and queries often carry tokens (Slack's do)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class _Target:
    id: uuid.UUID
    url: str
    events: frozenset[str]
    secret_encrypted: str
    viewer: Principal  # whose view of the connections it gets: its owner's

    def wants(self, event: Event) -> bool:
        if WEBHOOK_ALL_EVENTS not in self.events and event.type not in self.events:
            return False
        if self.viewer.is_admin:
            return True
        return event.scope is not None and self.viewer.can_see(*event.scope)


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def success(self) -> bool:
        return self.error is None


class WebhookDispatcher:
    """Delivers events to the active webhooks (kept in memory; ``refresh`` after a change)."""

    def __init__(
        self,
        store: WebhookStore,
        keys: KeyBox,
        http: aiohttp.ClientSession,
        *,
        backoff_s: float = 1.0,
        attempts: int = ATTEMPTS,
        timeout_s: float = TIMEOUT_S,
        grace_s: float = GRACE_S,
        owners: Callable[[str], Principal | None] = lambda _: None,
    ) -> None:
        self._store = store
        self._owners = owners  # a member's webhook hears only of what its owner may see
        self._keys = keys
        self._http = http
        self._backoff_s = backoff_s
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._grace_s = grace_s
        self._targets: tuple[_Target, ...] = ()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._refreshing = asyncio.Lock()  # one at a time, so the last read is the one kept

    async def start(self, events: EventBus) -> None:
        await self.refresh()
        events.subscribe(self.handle)

    async def refresh(self) -> None:
        async with self._refreshing:
            rows = await self._store.all(active_only=True)
            self._targets = tuple(
                _Target(
                    row.id, row.url, frozenset(row.events), row.secret_encrypted, self._viewer(row)
                )
                for row in rows
            )

    def _viewer(self, row: WebhookRow) -> Principal:
        """Made without a token (open mode): it hears everything; else as its owner sees (an
        owner no longer known sees only what it owned)."""
        if row.owner is None:
            return OPEN_ACCESS
        found = self._owners(row.owner)
        if found is not None:
            return found
        return Principal(token_id=None, name="gone", role=Role.member)

    async def handle(self, event: Event) -> None:
        """The bus's subscriber: schedules the deliveries and returns at once."""
        if self._stopping.is_set():
            log.warning("webhooks stopped: %s (%s) not delivered", event.type, event.id)
            return
        for target in self._targets:
            if target.wants(event):
                task = asyncio.create_task(
                    self._deliver(target, event), name=f"webhook {target.id} {event.id}"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Give the deliveries under way ``grace_s`` to finish (no new retries), then cancel."""
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("%d webhook deliveries cancelled at shutdown", len(pending))

    async def _deliver(self, target: _Target, event: Event) -> None:
        try:
            await self._attempt_all(target, event)
        except Exception:
            log.exception("webhook %s: delivering %s (%s) failed", target.id, event.type, event.id)

    async def _attempt_all(self, target: _Target, event: Event) -> None:
        body = orjson.dumps(event.payload())
        try:
            secret = self._keys.decrypt(target.secret_encrypted, context=str(target.id))
        except ConfigurationError as exc:  # its message never holds the secret
            log.warning("webhook %s: cannot sign %s: %s", target.id, event.type, exc.message)
            await self._record(target, event, 1, _Outcome(None, exc.message, 0.0))
            return
        outcome: _Outcome | None = None
        for attempt in range(1, self._attempts + 1):
            if attempt > 1 and await self._stopped_within(self._backoff_s * 2 ** (attempt - 2)):
                log.warning(
                    "webhook %s: %s (%s) not retried: the server is stopping",
                    target.id,
                    event.type,
                    event.id,
                )
                return
            outcome = await self._post(target, event, body, secret)
            if not await self._record(target, event, attempt, outcome):
                return  # the webhook was deleted meanwhile
            if outcome.success:
                return
        assert outcome is not None
        log.warning(
            "webhook %s (%s): gave up on %s (%s) after %d attempts: %s",
            target.id,
            _where(target.url),
            event.type,
            event.id,
            self._attempts,
            outcome.error,
        )

    async def _post(self, target: _Target, event: Event, body: bytes, secret: str) -> _Outcome:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-UMP-Event": event.type,
            "X-UMP-Timestamp": timestamp,
            "X-UMP-Signature": sign(secret, timestamp, body),
            "X-UMP-Delivery": event.id,
        }
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with self._http.post(
                target.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self._timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        return _Outcome(status, error, (time.perf_counter() - started) * 1000)

    async def _record(self, target: _Target, event: Event, attempt: int, outcome: _Outcome) -> bool:
        row = WebhookDeliveryRow(
            webhook_id=target.id,
            event_id=event.id,
            event_type=event.type,
            attempt=attempt,
            created_at=utcnow(),
            status_code=outcome.status_code,
            success=outcome.success,
            error=outcome.error,
            duration_ms=round(outcome.duration_ms, 3),
        )
        if await self._store.log_delivery(row):
            return True
        self._targets = tuple(t for t in self._targets if t.id != target.id)
        return False

    async def _stopped_within(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return False
        return True


class WebhookService:
    """Create, read and delete webhooks; the dispatcher follows every change."""

    def __init__(
        self,
        store: WebhookStore,
        keys: KeyBox,
        dispatcher: WebhookDispatcher,
        *,
        upstream_allowlist: Sequence[str] = (),
    ) -> None:
        self._store = store
        self._keys = keys
        self.dispatcher = dispatcher
        self._allowlist = tuple(upstream_allowlist)  # where members may send events

    async def start(self, events: EventBus) -> None:
        await self.dispatcher.start(events)

    async def stop(self) -> None:
        await self.dispatcher.stop()

    async def create(
        self, data: WebhookCreate, *, caller: Principal = OPEN_ACCESS
    ) -> WebhookCreated:
        if self._allowlist and not caller.is_admin:
            check_upstream_allowed(data.url, self._allowlist, field="url")
        secret = data.secret.reveal() if data.secret else secrets.token_urlsafe(32)
        webhook_id, now = uuid.uuid4(), utcnow()
        row = WebhookRow(
            id=webhook_id,
            url=data.url,
            events=list(data.events),
            secret_encrypted=self._keys.encrypt(secret, context=str(webhook_id)),
            description=data.description,
            is_active=data.is_active,
            owner=caller.owner,
            created_at=now,
            updated_at=now,
        )
        await self._store.add(row)
        await self.dispatcher.refresh()
        log.info("created webhook %s to %s for %s", row.id, _where(row.url), ", ".join(row.events))
        return WebhookCreated(**self._read(row, secret).model_dump(), secret=secret)

    async def get(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> WebhookRead:
        return self._read(await self._row(ref, caller))

    async def find(self, *, caller: Principal = OPEN_ACCESS) -> WebhookList:
        rows = await self._store.all()
        items = [self._read(row) for row in rows if caller.can_see(row.owner, None)]
        return WebhookList(items=items, total=len(items))

    async def delete(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> WebhookRead:
        """Delete a webhook and its deliveries; returns it as it was."""
        row = await self._row(ref, caller)
        if not await self._store.delete(row.id):
            raise _not_found(ref)
        await self.dispatcher.refresh()
        log.info("deleted webhook %s", row.id)
        return self._read(row)

    async def deliveries(
        self, ref: str, *, limit: int, offset: int, caller: Principal = OPEN_ACCESS
    ) -> WebhookDeliveryPage:
        if not 1 <= limit <= MAX_DELIVERY_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_DELIVERY_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        row = await self._row(ref, caller)
        rows, total = await self._store.deliveries(row.id, limit=limit, offset=offset)
        items = [WebhookDeliveryRead.model_validate(r) for r in rows]
        return WebhookDeliveryPage(items=items, total=total, limit=limit, offset=offset)

    async def _row(self, ref: str, caller: Principal) -> WebhookRow:
        """A webhook its owner or an admin may see (a member's only: no team sharing)."""
        try:
            row = await self._store.get(uuid.UUID(ref))
        except ValueError:
            row = None
        if row is None or not caller.can_see(row.owner, None):
            raise _not_found(ref)
        return row

    def _read(self, row: WebhookRow, secret: str | None = None) -> WebhookRead:
        if secret is None:
            try:
                secret = self._keys.decrypt(row.secret_encrypted, context=str(row.id))
            except ConfigurationError:
                secret = ""  # unreadable with this server key: show no characters of it
        return WebhookRead(
            id=row.id,
            url=row.url,
            events=list(row.events),
            description=row.description,
            is_active=row.is_active,
            owner=row.owner,
            has_secret=True,
            secret_mask=mask_secret(secret),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _not_found(ref: str) -> NotFound:
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    return NotFound(f"no webhook with id '{shown}'", field="id")
