"""API tokens as a service: issue (the token is answered once), list, look up, revoke; every change audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from gateway.auth import audit, tokens
from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.core.timeutil import iso_utc, now_ms
from gateway.store.models import ApiToken


def token_view(t: ApiToken) -> dict[str, Any]:
    """What the API (and the audit log) shows of a token: never the token or its hash."""
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created_at": iso_utc(t.created_at),
        "created_by": t.created_by,
        "revoked_at": iso_utc(t.revoked_at) if t.revoked_at is not None else None,
    }


def page_key(t: ApiToken) -> str:
    """Oldest first; ids are random, so a page ends at "<created_at>:<id>"."""
    return f"{t.created_at}:{t.id}"


class Tokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, actor: str, name: str, role: str) -> dict[str, Any]:
        """The new token's view with the token itself, shown this once."""
        row, token = tokens.new(name, role, actor[:100])
        with Session(self.engine) as session:
            taken = session.execute(select(col(ApiToken.id)).where(col(ApiToken.name) == name)).first()
            if taken is not None:  # the audit log tells tokens apart by name (a unique index backs this)
                raise Conflict(f"a token named {name!r} exists already (revoked tokens keep their names)")
            audit.record(session, actor, "create", "token", row.id, None, token_view(row))
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"a token named {name!r} exists already") from None
            return {**token_view(row), "token": token}

    def page(self, limit: int, after: str | None) -> list[ApiToken]:
        """Up to `limit` tokens after the `page_key` `after`, oldest first."""
        created_at, token_id = col(ApiToken.created_at), col(ApiToken.id)
        query = select(ApiToken).order_by(created_at, token_id).limit(limit)
        if after is not None:
            created, _, last_id = after.partition(":")
            if not (created.isascii() and created.isdigit() and len(created) <= 18):
                raise Invalid("cursor: not a cursor this API gave out")
            query = query.where(or_(created_at > int(created), (created_at == int(created)) & (token_id > last_id)))
        with Session(self.engine) as session:
            return list(session.execute(query).scalars().all())

    def get(self, token_id: str) -> ApiToken:
        with Session(self.engine) as session:
            row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return row

    def is_live(self, token_id: str) -> bool:
        """Known and not revoked: a revoked token stops working on its next request."""
        with Session(self.engine) as session:
            row = session.get(ApiToken, token_id)
            return row is not None and row.revoked_at is None

    def revoke(self, actor: str, token_id: str) -> None:
        """The row stays (the audit log names it); revoking twice changes nothing, so it is not logged twice."""
        with Session(self.engine) as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            if row.revoked_at is None:
                before = token_view(row)
                row.revoked_at = now_ms()
                audit.record(session, actor, "revoke", "token", token_id, before, token_view(row))
                session.add(row)
                session.commit()
