"""Errors as {"detail": "..."}: 4xx with a reason for the caller's mistakes, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from gateway.core.errors import Refused

log = logging.getLogger(__name__)


class Error(BaseModel):
    """What every error answer looks like; some add details, e.g. validation's `errors` list."""

    model_config = ConfigDict(extra="allow")
    detail: str


# For the /api routers: documents the error shape they really answer, in place of FastAPI's
# default 422 schema (a `detail` array), which _validation below does not answer.
RESPONSES: dict[int | str, dict] = {
    401: {"model": Error, "description": "missing or invalid token"},
    422: {"model": Error, "description": "invalid request"},
}


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] or ["body"]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        reasons = [f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors]
        return JSONResponse(
            {
                "detail": "; ".join(reasons) or "invalid request",
                "errors": [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in errors],
            },
            status_code=422,
        )

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        # A service turned the request down: its reason, with the status it names.
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the gateway's log"}, status_code=500)
