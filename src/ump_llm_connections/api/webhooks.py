"""``/api/webhooks``: where connection events are POSTed, signed, and how each delivery went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ump_llm_connections.api.deps import ActorDep, Clean, Offset, PrincipalDep, WebhooksDep
from ump_llm_connections.domain import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPage,
    WebhookList,
    WebhookRead,
)
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], dependencies=[Clean])


@router.post("", status_code=201, summary="Create a webhook; the answer shows its secret, once")
async def create_webhook(
    body: WebhookCreate, webhooks: WebhooksDep, actor: ActorDep
) -> WebhookCreated:
    created = await webhooks.create(body, caller=actor.caller)
    fields = body.model_fields_set | {"secret"}  # one is made when none is sent
    await actor.did(AuditAction.webhook_create, _target(created), fields)
    return created


@router.get("", summary="List webhooks")
async def list_webhooks(webhooks: WebhooksDep, caller: PrincipalDep) -> WebhookList:
    return await webhooks.find(caller=caller)


@router.get("/{webhook_id}", summary="Get a webhook")
async def get_webhook(webhook_id: str, webhooks: WebhooksDep, caller: PrincipalDep) -> WebhookRead:
    return await webhooks.get(webhook_id, caller=caller)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook and its deliveries")
async def delete_webhook(webhook_id: str, webhooks: WebhooksDep, actor: ActorDep) -> Response:
    deleted = await webhooks.delete(webhook_id, caller=actor.caller)
    await actor.did(AuditAction.webhook_delete, _target(deleted))
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", summary="Delivery attempts, newest first")
async def deliveries(
    webhook_id: str,
    webhooks: WebhooksDep,
    caller: PrincipalDep,
    limit: Annotated[int, Query(description="Page size, 1 to 500")] = 50,
    offset: Offset = 0,
) -> WebhookDeliveryPage:
    return await webhooks.deliveries(webhook_id, limit=limit, offset=offset, caller=caller)


def _target(webhook: WebhookRead) -> AuditTarget:
    """A webhook by id; its URL is not its name (paths and queries often carry tokens)."""
    return AuditTarget(TargetType.webhook, webhook.id)
