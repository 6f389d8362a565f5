"""``/api/tokens``: API tokens, for admins. A new token is in the create response only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ump_llm_connections.api.deps import ActorDep, AdminDep, Clean, TokensDep
from ump_llm_connections.domain.access import TokenCreate, TokenCreated, TokenList, TokenRead
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType

__all__ = ["router"]

router = APIRouter(prefix="/api/tokens", tags=["tokens"], dependencies=[Clean])

Ref = Annotated[str, "a token's id (UUID) or its key id"]


@router.post("", status_code=201, summary="Create a token (shown once, in this response)")
async def create_token(
    body: TokenCreate, tokens: TokensDep, admin: AdminDep, actor: ActorDep
) -> TokenCreated:
    created = await tokens.create(body, created_by=admin.owner or admin.name)
    await actor.did(AuditAction.token_create, _target(created), body.model_fields_set)
    return created


@router.get("", summary="List tokens (their key ids, never the tokens)")
async def list_tokens(tokens: TokensDep, _: AdminDep) -> TokenList:
    return TokenList(items=await tokens.list())


@router.get("/{token_id}", summary="Get one token")
async def get_token(token_id: Ref, tokens: TokensDep, _: AdminDep) -> TokenRead:
    return await tokens.get(token_id)


@router.delete("/{token_id}", summary="Revoke a token (it stops working at once)")
async def revoke_token(token_id: Ref, tokens: TokensDep, _: AdminDep, actor: ActorDep) -> TokenRead:
    revoked = await tokens.revoke(token_id)
    await actor.did(AuditAction.token_revoke, _target(revoked))
    return revoked


def _target(token: TokenRead) -> AuditTarget:
    return AuditTarget(TargetType.token, token.id, token.name)
