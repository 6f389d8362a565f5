"""The connection registry: the one place that creates, changes and reads connections.

The API, the CLI, the gateway and the health monitor all go through it. It applies the domain's
defaults and the caller's rights (``domain.access``), keeps the keys and header values sealed
(``sealing.py``) and turns store rows into ``ConnectionRead``.

Every ``extra_headers`` value is a secret (``X-Auth-Token``, ``Ocp-Apim-Subscription-Key``, …):
stored encrypted like the API key (context: the connection id), shown only as a mask, decrypted
only into a ``Target``. Values stored in plain text by older versions are encrypted at start.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from ump_llm_connections.domain import (
    SORT_FIELDS,
    ConnectionCreate,
    ConnectionFields,
    ConnectionFilters,
    ConnectionPage,
    ConnectionRead,
    ConnectionStatus,
    ConnectionUpdate,
    Summary,
    patched,
)
from ump_llm_connections.domain.access import (
    OPEN_ACCESS,
    Principal,
    check_keys_follow_host,
    ownership,
)
from ump_llm_connections.domain.network import check_upstream_allowed
from ump_llm_connections.errors import ConfigurationError, Forbidden, InvalidInput, NotFound
from ump_llm_connections.events import EventBus
from ump_llm_connections.providers.target import DEFAULT_MAX_RESPONSE_BYTES, Target
from ump_llm_connections.sealing import Sealer
from ump_llm_connections.secrets import KeyBox, is_encrypted, key_id_of
from ump_llm_connections.store.connections import ConnectionStore
from ump_llm_connections.store.health import CheckPoint
from ump_llm_connections.store.tables import ConnectionRow

log = logging.getLogger(__name__)

Listener = Callable[[uuid.UUID], Awaitable[None]]

# Fields copied between the schemas and the row as they are (api_key is handled apart).
PLAIN_FIELDS = tuple(name for name in ConnectionFields.model_fields if name != "api_key")
MAX_PAGE = 1000


class Registry:
    def __init__(
        self,
        store: ConnectionStore,
        keys: KeyBox | None,
        events: EventBus | None = None,
        *,
        max_upstream_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        upstream_allowlist: Sequence[str] = (),
    ) -> None:
        self._store = store
        self._allowlist = tuple(upstream_allowlist)  # where members may point connections
        self._sealer = Sealer(keys, max_upstream_bytes=max_upstream_bytes)
        self._events = events or EventBus()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Be told the id of every connection this registry creates, changes or deletes."""
        self._listeners.append(listener)

    async def notify(self, connection_id: uuid.UUID) -> None:
        """Tell the listeners about a change made outside the registry (the health monitor)."""
        await self._changed(connection_id)

    async def _changed(self, connection_id: uuid.UUID) -> None:
        for listener in self._listeners:
            await listener(connection_id)

    async def check_keys(self, others: Iterable[str] = ()) -> None:
        """Refuse to run with a server key that cannot read the stored API keys and headers
        (and the ``others``: the key ids of secrets stored elsewhere, webhooks')."""
        stored = set(await self._store.encrypted_key_ids()) | set(others)
        for _, headers in await self._store.extra_headers():
            stored.update(key_id_of(v) for v in headers.values() if is_encrypted(v))
        self._sealer.check(stored)

    async def seal_headers(self) -> None:
        """Encrypt the header values older versions stored in plain text."""
        for connection_id, headers in await self._store.extra_headers():
            if not all(is_encrypted(value) for value in headers.values()):
                sealed = self._sealer.seal_headers(
                    connection_id, self._sealer.open_headers(connection_id, headers)
                )
                await self._store.set_extra_headers(connection_id, sealed)
                log.info("encrypted the extra_headers values of connection %s", connection_id)

    async def create(
        self, data: ConnectionCreate, *, caller: Principal = OPEN_ACCESS
    ) -> ConnectionRead:
        self.check_upstream(str(data.base_url), caller, "base_url")
        row = ConnectionRow(id=uuid.uuid4(), **{f: getattr(data, f) for f in PLAIN_FIELDS})
        row.owner, row.team = ownership(caller, data.owner, data.team, data.model_fields_set)
        row.extra_headers = self._sealer.seal_headers(row.id, data.extra_headers)
        row.status = ConnectionStatus.unknown if data.is_active else ConnectionStatus.inactive
        row.consecutive_failures = 0
        if data.api_key is not None:
            self._sealer.set_key(row, data.api_key)
        await self._store.add(row)
        await self._changed(row.id)
        created = self._read(row)
        self._events.publish("connection.created", event_data(created), scope_of(created))
        log.info("created connection %r (%s, %s)", row.name, row.connection_type, row.id)
        return created

    async def get(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> ConnectionRead:
        return self._read(await self._row(ref, caller))

    async def get_with_checks(
        self, ref: str, start: datetime, *, caller: Principal = OPEN_ACCESS
    ) -> tuple[ConnectionRead, list[CheckPoint]]:
        """A connection and its health checks since ``start``, read together."""
        found = await self._store.get_with_checks(_parse_ref(ref), start)
        if found is None or not caller.can_see(found[0].owner, found[0].team):
            raise _not_found(ref)
        row, checks = found
        return self._read(row), checks

    async def find(
        self,
        filters: ConnectionFilters,
        *,
        sort: str = "name",
        limit: int = 50,
        offset: int = 0,
        caller: Principal = OPEN_ACCESS,
    ) -> ConnectionPage:
        if sort.lstrip("-") not in SORT_FIELDS:
            raise InvalidInput(
                f"sort must be one of {', '.join(SORT_FIELDS)} (prefix '-' for descending)",
                field="sort",
            )
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        rows, total = await self._store.find(
            filters, sort=sort, limit=limit, offset=offset, visible=caller.scope
        )
        items = [self._read(row) for row in rows]
        return ConnectionPage(items=items, total=total, limit=limit, offset=offset)

    async def summary(self, *, caller: Principal = OPEN_ACCESS) -> Summary:
        return await self._store.summary(visible=caller.scope)

    async def update(
        self, ref: str, patch: ConnectionUpdate, *, caller: Principal = OPEN_ACCESS
    ) -> ConnectionRead:
        current = await self._changeable(ref, caller)
        sent = patch.model_fields_set
        if sent & {"owner", "team"}:
            ownership(caller, patch.owner, patch.team, sent)

        def apply(row: ConnectionRow) -> None:
            merged = self._checked_merge(row, patch, caller)
            for field in PLAIN_FIELDS:
                setattr(row, field, getattr(merged, field))
            row.extra_headers = self._sealer.seal_headers(row.id, merged.extra_headers)
            if "is_active" in sent:
                row.deactivated_by_health = False
                row.status = _status_after_toggle(row)
            if "api_key" in sent:
                if patch.api_key is None:
                    row.api_key_encrypted = row.api_key_mask = None
                else:
                    self._sealer.set_key(row, patch.api_key)

        row = await self._store.update(current.id, apply)
        if row is None:
            raise _not_found(ref)
        await self._changed(row.id)
        log.info("updated connection %r (%s): %s", row.name, row.id, ", ".join(sorted(sent)))
        updated = self._read(row)
        changed = sorted(f for f in sent if f != "api_key") + (
            ["api_key"] if "api_key" in sent else []
        )
        scope = scope_of(updated)
        self._events.publish(
            "connection.updated", {**event_data(updated), "changed": changed}, scope
        )
        if updated.is_active != current.is_active:
            kind = "connection.activated" if updated.is_active else "connection.deactivated"
            self._events.publish(kind, {**event_data(updated), "reason": "manual"}, scope)
        return updated

    async def set_active(
        self, ref: str, active: bool, *, caller: Principal = OPEN_ACCESS
    ) -> ConnectionRead:
        current = await self._changeable(ref, caller)

        def apply(row: ConnectionRow) -> None:
            row.is_active = active
            row.deactivated_by_health = False  # a person decides now
            row.status = _status_after_toggle(row)

        row = await self._store.update(current.id, apply)
        if row is None:
            raise _not_found(ref)
        await self._changed(row.id)
        verb = "activated" if active else "deactivated"
        log.info("%s connection %r (%s)", verb, row.name, row.id)
        toggled = self._read(row)
        if active != current.is_active:
            self._events.publish(
                f"connection.{verb}", {**event_data(toggled), "reason": "manual"}, scope_of(toggled)
            )
        return toggled

    async def share(
        self, ref: str, team: str | None, *, caller: Principal = OPEN_ACCESS
    ) -> ConnectionRead:
        """Share a connection with a team (``None``: with no team). A member shares only what it
        owns, and only with its own team."""
        current = await self._changeable(ref, caller)
        if team is not None and not caller.is_admin and team != caller.team:
            raise Forbidden("a member can share only with its own team", field="team")

        def apply(row: ConnectionRow) -> None:
            row.team = team

        row = await self._store.update(current.id, apply)
        if row is None:
            raise _not_found(ref)
        await self._changed(row.id)
        shared = self._read(row)
        log.info("connection %r (%s) shared with %s", row.name, row.id, team or "no team")
        # Heard by the old team's and the new team's members alike.
        for scope in {(row.owner, current.team), (row.owner, team)}:
            self._events.publish(
                "connection.updated", {**event_data(shared), "changed": ["team"]}, scope
            )
        return shared

    async def delete(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> ConnectionRead:
        """Delete a connection; returns it as it was."""
        row = await self._changeable(ref, caller)
        if not await self._store.delete(row.id):
            raise _not_found(ref)
        await self._changed(row.id)
        deleted = self._read(row)
        self._events.publish("connection.deleted", event_data(deleted), scope_of(deleted))
        log.info("deleted connection %r (%s)", row.name, row.id)
        return deleted

    async def target(
        self, ref: str, *, caller: Principal = OPEN_ACCESS
    ) -> tuple[ConnectionRead, Target]:
        """A connection and where to reach it, its key decrypted (for adapters only)."""
        row = await self._row(ref, caller)
        return self._read(row), self._sealer.target_of(row)

    def unsaved_target(self, data: ConnectionCreate, caller: Principal = OPEN_ACCESS) -> Target:
        """Where to reach a configuration that is not saved (the Add dialog's test)."""
        self.check_upstream(str(data.base_url), caller, "connection.base_url")
        return self._sealer.unsaved_target(data)

    async def edited_target(
        self, ref: str, patch: ConnectionUpdate, *, caller: Principal = OPEN_ACCESS
    ) -> tuple[ConnectionCreate, Target]:
        """A connection as ``patch`` would leave it and where it would reach, before it is saved
        (the Edit dialog's test), checked as the PATCH would be: errors name
        ``changes.<field>``."""
        row = await self._changeable(ref, caller)
        try:
            edited = self._checked_merge(row, patch, caller)
        except InvalidInput as exc:
            field = f"changes.{exc.field}" if exc.field else "changes"
            raise InvalidInput(exc.message, field=field) from None
        target = self._sealer.edited_target(row, edited, patch.model_fields_set, patch.api_key)
        return edited, target

    async def everything(self) -> list[tuple[ConnectionRead, Target]]:
        """Every connection with its target: what the gateway's in-memory directory holds.

        A connection whose key cannot be read is left out (and logged): one damaged row must
        not take the gateway down with it.
        """
        found = []
        for row in await self._store.all():
            try:
                found.append((self._read(row), self._sealer.target_of(row)))
            except ConfigurationError as exc:
                log.error("connection %r (%s) cannot be served: %s", row.name, row.id, exc)
        return found

    async def names(self, *, caller: Principal = OPEN_ACCESS) -> dict[uuid.UUID, str]:
        """The names of the connections this caller may see, by id."""
        return await self._store.names(visible=caller.scope)

    async def version(self) -> tuple[int, object]:
        return await self._store.version()

    async def _row(self, ref: str, caller: Principal = OPEN_ACCESS) -> ConnectionRow:
        """A connection by id, or by name (case-insensitive) where the ref is not a UUID; one
        the caller may not see is not found either."""
        key = _parse_ref(ref)
        if isinstance(key, uuid.UUID):
            row = await self._store.get(key)
        else:
            row = await self._store.get_by_name(key)
        if row is None or not caller.can_see(row.owner, row.team):
            raise _not_found(ref)
        return row

    def check_upstream(self, url: str, caller: Principal, field: str) -> None:
        """Members may name only hosts on ``UMP_UPSTREAM_ALLOWLIST`` (when it is set)."""
        if self._allowlist and not caller.is_admin:
            check_upstream_allowed(url, self._allowlist, field=field)

    async def _changeable(self, ref: str, caller: Principal) -> ConnectionRow:
        row = await self._row(ref, caller)
        if not caller.can_change(row.owner):
            raise Forbidden(
                f"connection '{row.name}' is shared with your team but not yours: only its "
                "owner or an admin can change it"
            )
        return row

    def _checked_merge(
        self, row: ConnectionRow, patch: ConnectionUpdate, caller: Principal
    ) -> ConnectionCreate:
        """The row with the patch applied, checked by the same rules as a new connection; a
        new host must be allowed, and the stored secrets go to no other host."""
        current: dict[str, Any] = {f: getattr(row, f) for f in PLAIN_FIELDS}
        current["extra_headers"] = self._sealer.open_headers(row.id, row.extra_headers)
        merged = patched(current, patch, has_key=row.api_key_encrypted is not None)
        if str(merged.base_url) != row.base_url:
            self.check_upstream(str(merged.base_url), caller, "base_url")
        check_keys_follow_host(
            row.base_url,
            str(merged.base_url),
            has_key=row.api_key_encrypted is not None,
            has_headers=bool(row.extra_headers),
            sent=patch.model_fields_set,
        )
        return merged

    def _read(self, row: ConnectionRow) -> ConnectionRead:
        """The API's view of a row: header values masked like the key."""
        read = ConnectionRead.model_validate(row)
        if row.extra_headers:
            read.extra_headers = {
                name: self._sealer.mask(row.id, value) for name, value in row.extra_headers.items()
            }
        return read


def scope_of(c: ConnectionRead) -> tuple[str | None, str | None]:
    """Who may hear of events about this connection: its owner and its team."""
    return c.owner, c.team


def event_data(c: ConnectionRead) -> dict[str, Any]:
    """What an event says about a connection: who it is and its state, never its key."""
    return {
        "connection_id": str(c.id),
        "name": c.name,
        "connection_type": c.connection_type.value,
        "is_active": c.is_active,
        "status": c.status.value,
    }


def _status_after_toggle(row: ConnectionRow) -> ConnectionStatus:
    if not row.is_active:
        return ConnectionStatus.inactive
    if row.status == ConnectionStatus.inactive:
        return ConnectionStatus.unknown
    return ConnectionStatus(row.status)


def _parse_ref(ref: str) -> uuid.UUID | str:
    """A reference is an id when it parses as a UUID, else a name."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref


def _not_found(ref: str) -> NotFound:
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    return NotFound(f"no connection with id or name '{shown}'", field="id")
