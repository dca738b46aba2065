"""API tokens: issue (the token is answered once), list, revoke. Admin only; every change is audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import Actor, Page, admin_only, page, paginated, services
from gateway.auth.token_service import page_key, token_view
from gateway.services import Services

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # 64 so the audit log's actor, "token:<name>", is never cut short.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: Literal["admin", "installer", "operator", "auditor"]


@router.post("", status_code=201)
def create_token(
    body: TokenCreate, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    return svc.tokens.create(actor.name, body.name, body.role)


@router.get("", dependencies=[Depends(admin_only)])
def list_tokens(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    rows = svc.tokens.page(p.limit + 1, p.after)
    return paginated(rows, p.limit, token_view, key=page_key)


@router.get("/{token_id}", dependencies=[Depends(admin_only)])
def get_token(token_id: Annotated[str, Path(max_length=32)], svc: Services = Depends(services)) -> dict[str, Any]:
    return token_view(svc.tokens.get(token_id))


@router.delete("/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[str, Path(max_length=32)], actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    """Revoke: the row stays (the audit log names it) but the token stops working on its next request."""
    svc.tokens.revoke(actor.name, token_id)
    return Response(status_code=204)
