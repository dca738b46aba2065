"""Request bodies on /api: the token is checked before a byte of the body is read, and no body
beyond its route's limit is read at all.

FastAPI reads and parses a JSON body before it runs the route's dependencies (the bearer
check among them), so without this a caller with no token could make the gateway read and
parse a 100 MB document. This ASGI middleware answers 401/429 for a body sent without a valid
token, 413 for a declared length over the limit, and cuts off a body without a declared length
once it passes the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import check_token
from gateway.api.people import MAX_CSV_BYTES

MAX_JSON_BYTES = 1024 * 1024
LIMITS = {"/api/v1/people/import": MAX_CSV_BYTES}  # routes that take more than a JSON document

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


class BodyLimit:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not _has_body(headers):
            return await self.app(scope, receive, send)
        limit = LIMITS.get(scope["path"].rstrip("/"), MAX_JSON_BYTES)
        try:
            await self._authenticate(Request(scope), headers)
            declared = headers.get(b"content-length", b"0")
            if not declared.isdigit() or int(declared) > limit:
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
        except HTTPException as refused:
            answer = JSONResponse({"detail": refused.detail}, refused.status_code, headers=refused.headers)
            return await answer(scope, receive, send)
        await self.app(scope, _capped(receive, limit), send)

    @staticmethod
    async def _authenticate(request: Request, headers: dict[bytes, bytes]) -> None:
        scheme, _, presented = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        request.state.actor = await asyncio.to_thread(check_token, request, presented.strip())


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, f"the request body is larger than {limit} bytes")
        return message

    return capped
