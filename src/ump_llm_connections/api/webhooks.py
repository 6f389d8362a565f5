"""``/api/webhooks``: where connection events are POSTed, signed, and how each delivery went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ump_llm_connections.api.deps import Clean, Offset, PrincipalDep, WebhooksDep
from ump_llm_connections.domain import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPage,
    WebhookList,
    WebhookRead,
)

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], dependencies=[Clean])


@router.post("", status_code=201, summary="Create a webhook; the answer shows its secret, once")
async def create_webhook(
    body: WebhookCreate, webhooks: WebhooksDep, caller: PrincipalDep
) -> WebhookCreated:
    return await webhooks.create(body, caller=caller)


@router.get("", summary="List webhooks")
async def list_webhooks(webhooks: WebhooksDep, caller: PrincipalDep) -> WebhookList:
    return await webhooks.find(caller=caller)


@router.get("/{webhook_id}", summary="Get a webhook")
async def get_webhook(webhook_id: str, webhooks: WebhooksDep, caller: PrincipalDep) -> WebhookRead:
    return await webhooks.get(webhook_id, caller=caller)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook and its deliveries")
async def delete_webhook(webhook_id: str, webhooks: WebhooksDep, caller: PrincipalDep) -> Response:
    await webhooks.delete(webhook_id, caller=caller)
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
