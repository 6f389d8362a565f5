"""Who is calling and what they may see: API tokens, roles, teams, sharing and the audit log.

A token belongs to a *principal*: a name, a role and (for members) a team. Admins see and change
everything. A member sees and uses what it owns and what is shared with its team, changes only
what it owns, and is told "not found" about the rest. A resource (connection, pool, webhook)
carries ``owner`` (the id of the token that made it, as text) and ``team``.

The rules are pure functions of the principal and the resource's ``(owner, team)``, so the
gateway, the stores and the routes all ask the same question the same way.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from ump_llm_connections.clock import as_utc, utcnow
from ump_llm_connections.domain.enums import Source
from ump_llm_connections.domain.fields import UtcDateTime
from ump_llm_connections.domain.input import Body, SingleLine
from ump_llm_connections.errors import Forbidden, InvalidInput

__all__ = [
    "ANONYMOUS",
    "COMMAND_LINE",
    "OPEN_ACCESS",
    "TOKEN_PREFIX",
    "AuditEntry",
    "AuditPage",
    "Principal",
    "Role",
    "ShareRequest",
    "TeamName",
    "TokenCreate",
    "TokenCreated",
    "TokenList",
    "TokenRead",
    "check_keys_follow_host",
    "is_expired",
    "ownership",
]

TOKEN_PREFIX = "ump_"  # noqa: S105 - secret scanners find a leaked token by it


class Role(enum.StrEnum):
    admin = "admin"
    member = "member"


TeamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    SingleLine,
]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as its token says (or the open server's local user, ``OPEN_ACCESS``)."""

    token_id: uuid.UUID | None
    name: str
    role: Role
    team: str | None = None
    sources: frozenset[Source] = field(default_factory=frozenset)  # empty: every source
    rpm_limit: int | None = None
    monthly_budget: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def owner(self) -> str | None:
        """What this caller's new resources record as their owner."""
        return str(self.token_id) if self.token_id is not None else None

    @property
    def scope(self) -> tuple[str | None, str | None] | None:
        """What a store shows this caller: None for everything (admins), else the owner and
        team whose rows it sees."""
        return None if self.role is Role.admin else (self.owner, self.team)

    def can_see(self, owner: str | None, team: str | None) -> bool:
        """Whether a resource owned by ``owner`` and shared with ``team`` is visible."""
        if self.role is Role.admin:
            return True
        if owner is not None and owner == self.owner:
            return True
        return team is not None and team == self.team

    def can_change(self, owner: str | None) -> bool:
        """Whether this caller may change or delete a resource owned by ``owner``."""
        return self.role is Role.admin or (owner is not None and owner == self.owner)

    def source_for(self, declared: Source | None) -> Source | None:
        """The source a gateway call counts as: the declared one if this token may use it (None
        if it may not); with nothing declared, ``api`` if allowed, else the token's first."""
        if not self.sources:
            return declared or Source.api
        if declared is not None:
            return declared if declared in self.sources else None
        if Source.api in self.sources:
            return Source.api
        return next(s for s in Source if s in self.sources)


OPEN_ACCESS = Principal(token_id=None, name="local", role=Role.admin)
"""The caller of a server on loopback with no token in its database: may do everything."""

COMMAND_LINE = Principal(token_id=None, name="cli", role=Role.admin)
"""Whoever runs ``ump-llm`` on the server's machine (it reads the database and the key file)."""

ANONYMOUS = Principal(token_id=None, name="anonymous", role=Role.member)
"""A caller whose token was refused, as the audit log names it: may see nothing."""


def _in_the_future(value: datetime) -> datetime:
    if value <= utcnow():
        raise ValueError("must be in the future")
    return value


class TokenCreate(Body):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine
    ]
    role: Role = Role.member
    team: TeamName | None = None
    sources: list[Source] = Field(
        default_factory=list,
        max_length=4,
        description="The sources it may call the gateway as; empty: every source.",
    )
    expires_at: Annotated[UtcDateTime, AfterValidator(_in_the_future)] | None = Field(
        default=None, description="Never, when not set."
    )
    rpm_limit: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    monthly_budget: Annotated[float, Field(gt=0, le=10_000_000)] | None = None


class TokenRead(BaseModel):
    """A token as listed: never the token itself, only its public id (``ump_<key_id>_…``)."""

    id: uuid.UUID
    key_id: str
    name: str
    role: Role
    team: str | None
    sources: list[Source]
    expires_at: UtcDateTime | None
    rpm_limit: int | None
    monthly_budget: float | None
    created_at: UtcDateTime
    created_by: str | None
    revoked_at: UtcDateTime | None
    last_used_at: UtcDateTime | None
    active: bool


class TokenCreated(TokenRead):
    token: str = Field(description="Shown once: only its hash is stored.")


class TokenList(BaseModel):
    items: list[TokenRead]


class ShareRequest(Body):
    team: TeamName


class AuditEntry(BaseModel):
    """One append-only row: who did what to which target, from where, and which fields changed
    (names only, never values)."""

    id: int
    created_at: UtcDateTime
    token_id: uuid.UUID | None
    token_name: str | None
    client: str | None
    action: str
    target_type: str | None
    target_id: str | None
    target_name: str | None
    fields: list[str]
    outcome: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and as_utc(expires_at) <= now


def ownership(
    caller: Principal, owner: str | None, team: str | None, sent: set[str]
) -> tuple[str | None, str | None]:
    """Owner and team of a connection this caller writes: an admin sets them freely (owner
    defaults to the admin's token); a member owns what it makes and shares only with its team."""
    if caller.is_admin:
        return (owner if "owner" in sent else caller.owner), team
    if "owner" in sent and owner != caller.owner:
        raise Forbidden("a member cannot give a connection to someone else", field="owner")
    if team is not None and team != caller.team:
        raise Forbidden("a member can share only with its own team", field="team")
    return caller.owner, team


def check_keys_follow_host(
    old_url: str, new_url: str, *, has_key: bool, has_headers: bool, sent: set[str]
) -> None:
    """A stored key goes only to the host it was given for: moving a connection to another
    host (scheme, name or port) needs the key again in the same request, and so do secret
    header values; otherwise a PATCH of base_url would send them to whatever host it names."""
    if _origin(new_url) == _origin(old_url):
        return
    if has_key and "api_key" not in sent:
        raise InvalidInput(
            "base_url moves this connection to another host: send its api_key again in the "
            'same request (or "api_key": null to drop it)',
            field="api_key",
        )
    if has_headers and "extra_headers" not in sent:
        raise InvalidInput(
            "base_url moves this connection to another host: send its extra_headers again in "
            "the same request (or {} to drop them)",
            field="extra_headers",
        )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port
