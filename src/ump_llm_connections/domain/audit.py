"""The audit log's vocabulary: what can happen (``AuditAction``), to what (``AuditTarget``), how
it ended (``AuditOutcome``), and how the log is searched (``AuditFilters``).

A row names the fields a change touched, never their values: ``field_names`` keeps only plain
snake_case names and drops anything else, so a secret passed by mistake is never stored.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

__all__ = [
    "MAX_AUDIT_FIELDS",
    "ActionFilter",
    "AuditAction",
    "AuditFilters",
    "AuditOutcome",
    "AuditTarget",
    "IsoTime",
    "TargetType",
    "field_names",
]

MAX_AUDIT_FIELDS = 64  # more than any schema has
_FIELD_NAME = re.compile(r"[a-z][a-z0-9]{0,23}(?:_[a-z][a-z0-9]{0,23}){0,5}")
_ACTION_PATTERN = r"[a-z_]+(?:\.[a-z_]+)*\.?"
_ACTION_FILTER = re.compile(_ACTION_PATTERN)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class AuditAction(enum.StrEnum):
    """Everything the log records: changes, key and token actions, refused sign-ins. Reads and
    connection tests are not changes, and are not recorded."""

    connection_create = "connection.create"
    connection_update = "connection.update"
    connection_delete = "connection.delete"
    connection_activate = "connection.activate"
    connection_deactivate = "connection.deactivate"
    connection_key_change = "connection.key_change"
    connection_share = "connection.share"
    connection_unshare = "connection.unshare"
    pool_create = "pool.create"
    pool_update = "pool.update"
    pool_delete = "pool.delete"
    webhook_create = "webhook.create"
    webhook_update = "webhook.update"
    webhook_delete = "webhook.delete"
    preset_apply = "preset.apply"
    token_create = "token.create"  # noqa: S105 - an action, not a secret
    token_revoke = "token.revoke"  # noqa: S105 - an action, not a secret
    auth_failure = "auth.failure"
    auth_throttled = "auth.throttled"
    access_denied = "access.denied"  # a token refused something its role or team does not allow
    key_rotate = "key.rotate"
    spot_launch = "spot.launch"
    spot_terminate = "spot.terminate"
    spot_event = "spot.event"  # an EventBridge state change or interruption applied


class TargetType(enum.StrEnum):
    connection = "connection"
    pool = "pool"
    webhook = "webhook"
    preset = "preset"
    token = "token"  # noqa: S105 - a kind of target, not a secret
    server_key = "server_key"
    spot_instance = "spot_instance"
    route = "route"  # a refused request: its method and route, e.g. GET /api/tokens


class AuditOutcome(enum.StrEnum):
    ok = "ok"
    denied = "denied"  # refused: a bad token, a throttled address, a 403
    failed = "failed"  # attempted, did not complete


class AuditTarget(NamedTuple):
    """What an action was done to: ``AuditTarget(TargetType.connection, row.id, row.name)``.
    The id may be any value (a UUID, a key id); it is stored as text."""

    type: TargetType
    id: object = None
    name: str | None = None


def field_names(names: Iterable[str]) -> tuple[list[str], int]:
    """The plain field names among ``names`` (snake_case: at most six words, each a lowercase
    letter then at most 23 letters or digits), sorted and without repeats, at most
    ``MAX_AUDIT_FIELDS``; and how many values were dropped.

    A field name is what a row may hold: a value passed here by mistake (a key, a token, a
    secret) does not look like one and is dropped, never stored.
    """
    kept: set[str] = set()
    dropped = 0
    for name in names:
        if isinstance(name, str) and _FIELD_NAME.fullmatch(name):
            kept.add(name)
        else:
            dropped += 1
    ordered = sorted(kept)
    dropped += max(0, len(ordered) - MAX_AUDIT_FIELDS)
    return ordered[:MAX_AUDIT_FIELDS], dropped


def _action_filter(value: str) -> str:
    if not _ACTION_FILTER.fullmatch(value):
        raise ValueError("must be an action (connection.update) or a prefix ending in '.'")
    return value


ActionFilter = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_action_filter),
    Field(json_schema_extra={"pattern": f"^{_ACTION_PATTERN}$"}),  # the check, as documented
]
"""An action (``connection.update``), or a prefix ending in a dot (``connection.``)."""


def _not_a_number(value: object) -> object:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("must be an ISO 8601 time, such as 2026-06-01T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A time as ISO 8601 text; not the number of seconds since 1970 that pydantic also takes."""


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What ``GET /api/audit`` may narrow to; every filter given must match. ``action`` is an
    action, or a prefix ending in a dot (``connection.``); ``since`` counts from (inclusive),
    ``until`` up to (exclusive), both turned to UTC (a time without a zone is taken as UTC). A
    window that ends before it starts holds no rows."""

    action: str | None = None
    token_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: AuditOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _as_utc(self.since))  # frozen: set once, here
        object.__setattr__(self, "until", _as_utc(self.until))

    @property
    def action_prefix(self) -> str | None:
        """The prefix when ``action`` is one (``connection.``), else None."""
        return self.action if self.action is not None and self.action.endswith(".") else None


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 once in UTC: the ends of time
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
