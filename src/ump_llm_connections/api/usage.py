"""Usage reports: per connection and across connections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ump_llm_connections.api.deps import Clean, PrincipalDep, UsageDep
from ump_llm_connections.domain import UsageReport

router = APIRouter(tags=["usage"], dependencies=[Clean])

Window = Annotated[str, Query(description="How far back: 30m, 24h, 7d (at most 31d)")]
Bucket = Annotated[
    str | None, Query(description="Bucket size, e.g. 1h; by default about 24 to 60 buckets")
]


@router.get("/api/connections/{connection_id}/usage", summary="Usage of one connection")
async def connection_usage(
    connection_id: str,
    usage: UsageDep,
    caller: PrincipalDep,
    window: Window = "24h",
    bucket: Bucket = None,
) -> UsageReport:
    return await usage.connection(connection_id, window=window, bucket=bucket, caller=caller)


@router.get("/api/usage", summary="Usage across connections, with totals per connection")
async def all_usage(
    usage: UsageDep, caller: PrincipalDep, window: Window = "24h", bucket: Bucket = None
) -> UsageReport:
    return await usage.overall(window=window, bucket=bucket, caller=caller)
