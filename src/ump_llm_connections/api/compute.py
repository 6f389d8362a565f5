"""``/api/compute``: AWS spot instances that register themselves as connections, EventBridge's
instance events, and the instances' heartbeats. Thin: ``compute/spot.py`` does the work.

The heartbeat is the one route here past the normal auth (``api/auth.py``): an instance proves
itself with its own token, written into its user data at launch and stored only hashed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Request

from ump_llm_connections.api.deps import ActorDep, AdminDep, Clean, PrincipalDep, runtime_of
from ump_llm_connections.api.responses import ErrorResponse
from ump_llm_connections.compute.spot import SpotService
from ump_llm_connections.domain import AuditAction, AuditTarget, SecretText, TargetType
from ump_llm_connections.domain.spot import (
    ComputeEvent,
    EventApplied,
    SpotInstanceCreate,
    SpotInstanceList,
    SpotInstanceRead,
)

router = APIRouter(prefix="/api/compute", tags=["compute"], dependencies=[Clean])

HEARTBEAT_PATH = re.compile(r"/api/compute/spot-instances/[^/]+/heartbeat")
Ref = Annotated[str, "a spot instance id (UUID) or its AWS instance id"]

AWS_ERRORS: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorResponse, "description": "An AWS quota stops the launch"},
    502: {"model": ErrorResponse, "description": "AWS EC2 failed"},
    503: {
        "model": ErrorResponse,
        "description": "No AWS credentials, no spare capacity, or EC2 cannot be reached",
    },
}


def is_heartbeat(path: str) -> bool:
    """Whether a path is an instance's heartbeat (authenticated by its own token only)."""
    return path.endswith("/heartbeat") and HEARTBEAT_PATH.fullmatch(path) is not None


def _spot(request: Request) -> SpotService:
    return runtime_of(request).spot


@router.post(
    "/spot-instances",
    status_code=201,
    summary="Launch a spot GPU instance serving a model; its aws_spot connection comes with it",
    responses=AWS_ERRORS,
)
async def launch(body: SpotInstanceCreate, request: Request, actor: ActorDep) -> SpotInstanceRead:
    launched = await _spot(request).launch(body, actor.caller)
    await actor.did(AuditAction.spot_launch, _target(launched), body.model_fields_set)
    return launched


@router.get("/spot-instances", summary="List spot instances with state, price and cost")
async def list_instances(request: Request, caller: PrincipalDep) -> SpotInstanceList:
    return await _spot(request).list(caller)


@router.get("/spot-instances/{spot_id}", summary="A spot instance, its cost and its connection")
async def get_instance(spot_id: Ref, request: Request, caller: PrincipalDep) -> SpotInstanceRead:
    return await _spot(request).get(spot_id, caller)


@router.delete(
    "/spot-instances/{spot_id}",
    summary="Terminate a spot instance and deactivate its connection",
    responses=AWS_ERRORS,
)
async def terminate(spot_id: Ref, request: Request, actor: ActorDep) -> SpotInstanceRead:
    ended = await _spot(request).terminate(spot_id, actor.caller)
    await actor.did(AuditAction.spot_terminate, _target(ended))
    return ended


@router.post(
    "/spot-instances/{spot_id}/heartbeat",
    summary="An instance renews its lease (Authorization: Bearer <its own token>)",
)
async def heartbeat(spot_id: Ref, request: Request) -> SpotInstanceRead:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = SecretText(credentials.strip()) if scheme.lower() == "bearer" else None
    return await _spot(request).heartbeat(spot_id, token or None)


@router.post(
    "/events",
    summary="Apply an EventBridge EC2 state-change or spot interruption event at once",
)
async def apply_event(
    body: ComputeEvent, request: Request, _: AdminDep, actor: ActorDep
) -> EventApplied:
    applied = await _spot(request).apply_event(body)
    if applied.instance is not None:
        await actor.did(AuditAction.spot_event, _target(applied.instance))
    return applied


def _target(instance: SpotInstanceRead) -> AuditTarget:
    return AuditTarget(TargetType.spot_instance, instance.id, instance.name)
