"""API tokens: issue (the token is answered once), list, revoke. Admin only; every change is audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlmodel import Session

from gateway.api.deps import Actor, Page, admin_only, engine, page, paginated
from gateway.auth import audit, tokens
from gateway.core.timeutil import iso_utc, now_ms
from gateway.store.models import ApiToken

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # 64 so the audit log's actor, "token:<name>", is never cut short.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: Literal["admin", "installer", "operator", "auditor"]


def shape(t: ApiToken) -> dict[str, Any]:
    """What the API (and the audit log) shows of a token: never the token or its hash."""
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created_at": iso_utc(t.created_at),
        "created_by": t.created_by,
        "revoked_at": iso_utc(t.revoked_at) if t.revoked_at is not None else None,
    }


def _get(session: Session, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise HTTPException(404, f"no token {token_id!r}")
    return row


@router.post("", status_code=201)
def create_token(body: TokenCreate, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> dict[str, Any]:
    row, token = tokens.new(body.name, body.role, actor.name[:100])
    with Session(eng) as session:
        audit.record(session, actor.name, "create", "token", row.id, None, shape(row))
        session.add(row)
        session.commit()
        return {**shape(row), "token": token}


@router.get("", dependencies=[Depends(admin_only)])
def list_tokens(p: Page = Depends(page), eng: Any = Depends(engine)) -> dict[str, Any]:
    # Oldest first; ids are random, so the cursor is "<created_at>:<id>".
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id).limit(p.limit + 1)
    if p.after is not None:
        created, _, last_id = p.after.partition(":")
        if not created.isdigit():
            raise HTTPException(422, "cursor: not a cursor this API gave out")
        query = query.where(
            or_(ApiToken.created_at > int(created), (ApiToken.created_at == int(created)) & (ApiToken.id > last_id))
        )
    with Session(eng) as session:
        rows = session.execute(query).scalars().all()
        return paginated(list(rows), p.limit, shape, key=lambda t: f"{t.created_at}:{t.id}")


@router.get("/{token_id}", dependencies=[Depends(admin_only)])
def get_token(token_id: Annotated[str, Path(max_length=32)], eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        return shape(_get(session, token_id))


@router.delete("/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[str, Path(max_length=32)], actor: Actor = Depends(admin_only), eng: Any = Depends(engine)
) -> Response:
    """Revoke: the row stays (the audit log names it) but the token stops working on its next request."""
    with Session(eng) as session:
        row = _get(session, token_id)
        if row.revoked_at is None:  # revoking twice changes nothing, so it is not logged twice
            before = shape(row)
            row.revoked_at = now_ms()
            audit.record(session, actor.name, "revoke", "token", token_id, before, shape(row))
            session.add(row)
            session.commit()
    return Response(status_code=204)
