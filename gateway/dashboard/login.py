"""Signing in with an API token, and out."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from gateway.auth.throttle import throttle_of
from gateway.dashboard.auth import (
    COOKIE,
    Form,
    Posted,
    authenticate_token,
    check_origin,
    clear_session_cookie,
    posted_by,
    read_form,
    sessions,
    set_session_cookie,
)
from gateway.dashboard.web import PAGE_HEADERS, page_router, render

router = page_router()
MAX_TOKEN_CHARS = 500


@router.get("/login")
def login_page(request: Request) -> Response:
    if sessions(request).get(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
    return render(request, None, "login.html", title="Sign in", error=None)


@router.post("/login")
def sign_in(request: Request, form: Form = Depends(read_form)) -> Response:
    check_origin(request)
    throttle = throttle_of(request.app.state)
    address = request.client.host if request.client is not None else "unknown"
    if wait := throttle.retry_after(address):
        error = f"Too many wrong tokens from this address; try again in {wait} s."
        page = render(request, None, "login.html", status=429, title="Sign in", error=error)
        page.headers["Retry-After"] = str(wait)
        return page
    token = form.get("token").strip()
    actor = authenticate_token(request, token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
    if actor is None:
        throttle.failed(address)
        return render(
            request,
            None,
            "login.html",
            status=401,
            title="Sign in",
            error="That token is not valid (mistyped, revoked, or not a token of this gateway).",
        )
    throttle.succeeded(address)
    store = sessions(request)
    store.drop(request.cookies.get(COOKIE))  # a fresh session id at every sign-in
    response = RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(request, response, store.create(actor))
    return response


@router.post("/logout")
def sign_out(request: Request, posted: Posted = Depends(posted_by("signed_in"))) -> Response:
    sessions(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303, headers=PAGE_HEADERS)
    clear_session_cookie(response)
    return response
