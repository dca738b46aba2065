"""What every router shares: the services, authentication, pagination."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from gateway.auth.identity import Actor, authenticate
from gateway.auth.throttle import throttle_of
from gateway.core.timeutil import parse_query_time
from gateway.services import Services

bearer = HTTPBearer(auto_error=False, description="An API token: the bootstrap admin token from config")


def services(request: Request) -> Services:
    return request.app.state.services


def engine(request: Request) -> Engine:
    return services(request).engine


def _actor(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Actor:
    known = getattr(request.state, "actor", None)  # already checked before the body was read
    if isinstance(known, Actor):
        return known
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    actor = check_token(request, credentials.credentials)
    request.state.actor = actor
    return actor


def check_token(request: Request, presented: str) -> Actor:
    """The actor of a presented token; 401 if it is wrong, 429 while its address has tried too many."""
    throttle, address = throttle_of(request.app.state), client_address(request)
    if wait := throttle.retry_after(address):
        raise HTTPException(429, "too many wrong tokens from this address", headers={"Retry-After": str(wait)})
    svc = services(request)
    actor = authenticate(svc.engine, svc.settings.api.admin_token.get_secret_value(), presented)
    if actor is None:
        throttle.failed(address)
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    throttle.succeeded(address)
    return actor


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def allow(*roles: str) -> Callable[..., Actor]:
    """A dependency: any valid token (401 otherwise) whose role is admin or one of `roles` (403 otherwise)."""
    permitted = {"admin", *roles}

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        actor = _actor(request, credentials)
        if actor.role not in permitted:
            raise HTTPException(403, f"role {actor.role!r} may not do this; needs one of {sorted(permitted)}")
        return actor

    return check


# Who may read what. Writes are narrower and named where they are declared.
read_devices = allow("installer", "operator", "auditor")
read_records = allow("operator", "auditor")
read_deadletters = allow("installer", "operator", "auditor")
admin_only = allow()


@dataclass
class Page:
    limit: int
    cursor: str | None

    @property
    def after(self) -> str | None:
        """The sort key of the last item the caller has seen. Decoded when the route reads it, so
        a caller without a token hears 401 before anything about its cursor."""
        return decode_cursor(self.cursor) if self.cursor else None

    @property
    def after_id(self) -> int:
        """For tables paged by their numeric row id."""
        after = self.after
        if after is None:
            return 0
        if not is_row_id(after):
            raise HTTPException(422, "cursor: not a cursor this API gave out")
        return int(after)


def is_row_id(text: str) -> bool:
    """Plain ASCII digits that fit a 64-bit column (a cursor of 10**24 is not a row id)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def page(
    limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="`next` from the previous page")] = None,
) -> Page:
    return Page(limit, cursor)


def encode_cursor(last: object) -> str:
    return base64.urlsafe_b64encode(str(last).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        text = ""
    if not text or not text.isprintable():
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    return text


def paginated(
    rows: Sequence[Any],
    limit: int,
    shape: Callable[[Any], dict[str, Any]],
    key: Callable[[Any], object] = lambda r: r.id,
) -> dict[str, Any]:
    """Rows fetched with limit + 1: the extra one only says there is a next page."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [shape(r) for r in rows], "next": encode_cursor(key(rows[-1])) if more and rows else None}


def query_time(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_query_time(value)
    except (ValueError, IndexError):
        raise HTTPException(422, f"{name}: not an RFC 3339 date-time: {value[:40]!r}") from None


def within(query: Any, column: Any, since: str | None, until: str | None) -> Any:
    """`query` limited to since <= column < until (RFC 3339 query parameters; either may be absent)."""
    if (start := query_time("since", since)) is not None:
        query = query.where(column >= start)
    if (end := query_time("until", until)) is not None:
        query = query.where(column < end)
    return query
