"""``/api/audit``: the audit log, for admins; filtered and paged, newest first."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ump_llm_connections.api.deps import AdminDep, AuditDep, Clean, Offset, refuse_unknown_params
from ump_llm_connections.audit import MAX_AUDIT_PAGE
from ump_llm_connections.domain.access import AuditPage
from ump_llm_connections.domain.audit import (
    ActionFilter,
    AuditFilters,
    AuditOutcome,
    IsoTime,
    TargetType,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["audit"], dependencies=[Clean])

PARAMS = frozenset(
    {
        "action",
        "token_id",
        "target_type",
        "target_id",
        "outcome",
        "since",
        "until",
        "limit",
        "offset",
    }
)


@router.get("", summary="The audit log, newest first (admins only)")
async def list_audit(
    request: Request,
    audit: AuditDep,
    _: AdminDep,
    action: Annotated[
        ActionFilter | None,
        Query(description="An action (connection.update) or a prefix ending in '.' (connection.)"),
    ] = None,
    token_id: Annotated[uuid.UUID | None, Query(description="The token that acted")] = None,
    target_type: TargetType | None = None,
    target_id: Annotated[str | None, Query(max_length=200, description="Its id, as text")] = None,
    outcome: AuditOutcome | None = None,
    since: Annotated[IsoTime | None, Query(description="From (inclusive), ISO 8601")] = None,
    until: Annotated[IsoTime | None, Query(description="Up to (exclusive), ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE, description="Page size")] = 50,
    offset: Offset = 0,
) -> AuditPage:
    refuse_unknown_params(request, PARAMS)
    filters = AuditFilters(
        action=action,
        token_id=token_id,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        since=since,
        until=until,
    )
    return await audit.find(filters, limit=limit, offset=offset)
