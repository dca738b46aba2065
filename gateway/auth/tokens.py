"""API tokens: random strings shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from gateway.core.timeutil import now_ms
from gateway.store.models import ApiToken

PREFIX = "gwt_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new(name: str, role: str, created_by: str) -> tuple[ApiToken, str]:
    """A new token row (not yet added to a session) and the token itself, to show once."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=secrets.token_hex(8),
        name=name,
        role=role,
        token_hash=digest(token),
        created_at=now_ms(),
        created_by=created_by,
    )
    return row, token


def lookup(engine: Engine, token: str) -> ApiToken | None:
    """The live (not revoked) token row for a presented token, or None."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    with Session(engine) as session:
        row = session.execute(select(ApiToken).where(col(ApiToken.token_hash) == digest(token))).scalar_one_or_none()
    return row if row is not None and row.revoked_at is None else None
