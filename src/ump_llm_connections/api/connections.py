"""``/api/connections``: the guide's CRUD and operations. Thin: the registry does the work."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ump_llm_connections.api.deps import (
    ActorDep,
    Clean,
    Offset,
    PrincipalDep,
    QueryBool,
    RegistryDep,
    TesterDep,
    UsageDep,
    refuse_unknown_params,
)
from ump_llm_connections.api.responses import UPSTREAM_ERRORS, errors
from ump_llm_connections.domain import (
    ActivityList,
    ConnectionCreate,
    ConnectionDetail,
    ConnectionFilters,
    ConnectionPage,
    ConnectionRead,
    ConnectionStatus,
    ConnectionType,
    ConnectionUpdate,
    EditModelsRequest,
    EditTestRequest,
    HealthCheckPage,
    HealthSummary,
    ModelList,
    Summary,
    TestResult,
    UnsavedModelsRequest,
    UnsavedTestRequest,
)
from ump_llm_connections.domain.access import ShareRequest
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType
from ump_llm_connections.errors import InvalidInput

router = APIRouter(prefix="/api/connections", tags=["connections"], dependencies=[Clean])

LIST_PARAMS = frozenset(
    {
        "connection_type",
        "use_in_livekit",
        "use_in_mcp",
        "use_in_automation",
        "is_active",
        "status",
        "tag",
        "q",
        "sort",
        "limit",
        "offset",
    }
)

Ref = Annotated[str, "a connection id (UUID) or its name"]
MAX_TAGS = 50  # as many as a connection may have
MAX_ACTIVITY_IDS = 200  # a page of the list, and then some


@router.post("", status_code=201, summary="Create a connection", responses=errors(409))
async def create_connection(
    body: ConnectionCreate, registry: RegistryDep, actor: ActorDep
) -> ConnectionRead:
    created = await registry.create(body, caller=actor.caller)
    await actor.did(AuditAction.connection_create, _target(created), body.model_fields_set)
    return created


@router.get("", summary="List connections, filtered, sorted and paged")
async def list_connections(
    request: Request,
    registry: RegistryDep,
    caller: PrincipalDep,
    connection_type: ConnectionType | None = None,
    use_in_livekit: QueryBool = None,
    use_in_mcp: QueryBool = None,
    use_in_automation: QueryBool = None,
    is_active: QueryBool = None,
    status: ConnectionStatus | None = None,
    tag: Annotated[
        list[str], Query(description="Repeatable: connections having every tag given")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    q: Annotated[
        str | None, Query(max_length=200, description="Search in name, description, model")
    ] = None,
    sort: Annotated[
        str, Query(description="A field name, '-' in front for descending: -created_at")
    ] = "name",
    limit: Annotated[int, Query(description="Page size, 1 to 1000")] = 50,
    offset: Offset = 0,
) -> ConnectionPage:
    refuse_unknown_params(request, LIST_PARAMS)
    if len(tag) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field="tag")
    filters = ConnectionFilters(
        connection_type=connection_type,
        use_in_livekit=use_in_livekit,
        use_in_mcp=use_in_mcp,
        use_in_automation=use_in_automation,
        is_active=is_active,
        status=status,
        tags=tag,
        q=q or None,
    )
    return await registry.find(filters, sort=sort, limit=limit, offset=offset, caller=caller)


@router.post("/test", summary="Test a configuration before saving it")
async def run_unsaved_test(
    body: UnsavedTestRequest, tester: TesterDep, caller: PrincipalDep
) -> TestResult:
    return await tester.test_unsaved(body, caller=caller)


@router.post(
    "/models",
    summary="The models a configuration's upstream offers, before saving it",
    responses=UPSTREAM_ERRORS,
)
async def list_unsaved_models(
    body: UnsavedModelsRequest, tester: TesterDep, caller: PrincipalDep
) -> ModelList:
    return ModelList(models=await tester.models_unsaved(body, caller=caller))


@router.get("/summary", summary="Counts for the summary cards")
async def summary(registry: RegistryDep, caller: PrincipalDep) -> Summary:
    return await registry.summary(caller=caller)


@router.get("/activity", summary="Latency of the last call and calls today, per list row")
async def activity(
    usage: UsageDep,
    caller: PrincipalDep,
    id: Annotated[
        list[uuid.UUID],
        Query(description=f"Repeatable: connection ids, at most {MAX_ACTIVITY_IDS}"),
    ] = [],  # noqa: B006 - FastAPI copies query defaults
) -> ActivityList:
    if len(id) > MAX_ACTIVITY_IDS:
        raise InvalidInput(f"at most {MAX_ACTIVITY_IDS} ids", field="id")
    return await usage.activity(id, caller=caller)


@router.get("/{connection_id}", summary="Get one connection (by id or name), with its health")
async def get_connection(
    connection_id: Ref, tester: TesterDep, caller: PrincipalDep
) -> ConnectionDetail:
    return await tester.detail(connection_id, caller=caller)


@router.get("/{connection_id}/health", summary="Health: state, latency p50/p95, success rate")
async def connection_health(
    connection_id: Ref, tester: TesterDep, caller: PrincipalDep
) -> HealthSummary:
    return await tester.health(connection_id, caller=caller)


@router.patch(
    "/{connection_id}",
    summary="Change some fields; api_key null clears the key",
    responses=errors(409),
)
async def update_connection(
    connection_id: Ref, body: ConnectionUpdate, registry: RegistryDep, actor: ActorDep
) -> ConnectionRead:
    updated = await registry.update(connection_id, body, caller=actor.caller)
    sent = body.model_fields_set
    await actor.did(AuditAction.connection_update, _target(updated), sent)
    if "api_key" in sent:
        await actor.did(AuditAction.connection_key_change, _target(updated), ["api_key"])
    return updated


@router.delete("/{connection_id}", status_code=204, summary="Delete a connection")
async def delete_connection(connection_id: Ref, registry: RegistryDep, actor: ActorDep) -> Response:
    deleted = await registry.delete(connection_id, caller=actor.caller)
    await actor.did(AuditAction.connection_delete, _target(deleted))
    return Response(status_code=204)


@router.post("/{connection_id}/activate", summary="Activate a connection")
async def activate(connection_id: Ref, registry: RegistryDep, actor: ActorDep) -> ConnectionRead:
    activated = await registry.set_active(connection_id, True, caller=actor.caller)
    await actor.did(AuditAction.connection_activate, _target(activated), ["is_active"])
    return activated


@router.post("/{connection_id}/deactivate", summary="Deactivate a connection")
async def deactivate(connection_id: Ref, registry: RegistryDep, actor: ActorDep) -> ConnectionRead:
    deactivated = await registry.set_active(connection_id, False, caller=actor.caller)
    await actor.did(AuditAction.connection_deactivate, _target(deactivated), ["is_active"])
    return deactivated


@router.post("/{connection_id}/share", summary="Share a connection with a team")
async def share(
    connection_id: Ref, body: ShareRequest, registry: RegistryDep, actor: ActorDep
) -> ConnectionRead:
    shared = await registry.share(connection_id, body.team, caller=actor.caller)
    await actor.did(AuditAction.connection_share, _target(shared), ["team"])
    return shared


@router.post("/{connection_id}/unshare", summary="Stop sharing a connection with its team")
async def unshare(connection_id: Ref, registry: RegistryDep, actor: ActorDep) -> ConnectionRead:
    unshared = await registry.share(connection_id, None, caller=actor.caller)
    await actor.did(AuditAction.connection_unshare, _target(unshared), ["team"])
    return unshared


@router.post(
    "/{connection_id}/test",
    summary="Send a test prompt; record the result (with changes: test an edit, unsaved)",
)
async def run_test(
    connection_id: Ref,
    tester: TesterDep,
    caller: PrincipalDep,
    body: EditTestRequest | None = None,
) -> TestResult:
    return await tester.test(connection_id, body or EditTestRequest(), caller=caller)


@router.get("/{connection_id}/health-checks", summary="Test history, newest first")
async def health_checks(
    connection_id: Ref,
    tester: TesterDep,
    caller: PrincipalDep,
    limit: Annotated[int, Query(description="Page size, 1 to 500")] = 50,
    offset: Offset = 0,
) -> HealthCheckPage:
    return await tester.history(connection_id, limit=limit, offset=offset, caller=caller)


@router.get(
    "/{connection_id}/models",
    summary="The models the upstream offers",
    responses=UPSTREAM_ERRORS,
)
async def list_models(connection_id: Ref, tester: TesterDep, caller: PrincipalDep) -> ModelList:
    return ModelList(models=await tester.models(connection_id, caller=caller))


@router.post(
    "/{connection_id}/models",
    summary="The models the upstream would offer after an edit, before it is saved",
    responses=UPSTREAM_ERRORS,
)
async def list_edited_models(
    connection_id: Ref, body: EditModelsRequest, tester: TesterDep, caller: PrincipalDep
) -> ModelList:
    return ModelList(models=await tester.models_edited(connection_id, body, caller=caller))


def _target(connection: ConnectionRead) -> AuditTarget:
    return AuditTarget(TargetType.connection, connection.id, connection.name)
