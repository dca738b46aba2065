"""Sessions, roles and CSRF for the dashboard.

Signing in takes an API token once. The browser then holds only an opaque,
random session id (HttpOnly, SameSite=Strict cookie); the session, kept in
this process's memory, maps it to who signed in (the token's name, role and
id), never to the token itself. A revoked token ends its sessions at the next
request. Every POST form carries the session's CSRF token in a hidden field.

Roles are the API's: each permission below is the set of roles the matching
API operation admits (tests/test_dashboard.py checks them against the API's
role table), so the dashboard never shows or does more than the token could
through the API.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request

from gateway.auth.identity import ROLES, Actor, authenticate
from gateway.dashboard.web import LoginNeeded, Refused
from gateway.services import Services

COOKIE = "gw_dashboard"
IDLE_S = 8 * 3600  # a session unused this long is gone
MAX_SESSIONS = 1000  # the least recently used goes first beyond this
MAX_FORM_BYTES = 64 * 1024

EVERY_ROLE = frozenset(ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "read_devices": frozenset({"admin", "installer", "operator", "auditor"}),  # GET /api/v1/devices, deadletters
    "read_records": frozenset({"admin", "operator", "auditor"}),  # punches, access events, days, visits
    "send_commands": frozenset({"admin", "installer", "operator"}),  # POST /api/v1/devices/{id}/commands
    "invite_visitors": frozenset({"admin", "operator"}),  # POST /api/v1/visitors/invitations
    "read_vehicles": frozenset({"admin", "operator", "auditor"}),  # GET /api/v1/vehicles
    "read_uplink": frozenset({"admin", "installer", "operator", "auditor"}),  # GET /api/v1/uplink/status
    "read_parked": frozenset({"admin", "operator", "auditor"}),  # GET /api/v1/uplink/parked: records' content
    "retry_uplink": frozenset({"admin"}),  # POST /api/v1/uplink/parked/{entry_id}/retry
    "read_health": EVERY_ROLE,  # /metrics needs no token at all
    "signed_in": EVERY_ROLE,  # e.g. signing out
}
ONLY_COMMANDS = {"operator": frozenset({"open_door"})}  # as queue_command refuses the rest


@dataclass
class DashboardSession:
    actor: Actor
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_used: float = field(default_factory=time.monotonic)
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown once


class SessionStore:
    def __init__(self, idle_s: float = IDLE_S, capacity: int = MAX_SESSIONS) -> None:
        self.idle_s, self.capacity = idle_s, capacity
        self._sessions: OrderedDict[str, DashboardSession] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, actor: Actor) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = DashboardSession(actor)
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str | None, now: float | None = None) -> DashboardSession | None:
        if not session_id:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_used > self.idle_s:
                del self._sessions[session_id]
                return None
            session.last_used = now
            self._sessions.move_to_end(session_id)
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


_store_lock = threading.Lock()


def sessions(request: Request) -> SessionStore:
    """The app's session store, made on first use (sessions live as long as the process)."""
    state = request.app.state
    with _store_lock:
        if getattr(state, "dashboard_sessions", None) is None:
            state.dashboard_sessions = SessionStore()
        return state.dashboard_sessions


@dataclass
class Viewer:
    """Who is looking at a page, and what their role lets them see and do."""

    actor: Actor
    session: DashboardSession

    @property
    def role(self) -> str:
        return self.actor.role

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, permission: str) -> bool:
        return self.actor.role in PERMISSIONS[permission]

    def may_send(self, command: str) -> bool:
        limited = ONLY_COMMANDS.get(self.actor.role)
        return self.can("send_commands") and (limited is None or command in limited)

    def flash(self, kind: str, text: str) -> None:
        self.session.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.session.flashes[:] = list(self.session.flashes), []
        return taken


def authenticate_token(request: Request, token: str) -> Actor | None:
    """The API's own token check (bootstrap admin token or a live stored token)."""
    svc = services(request)
    return authenticate(svc.engine, svc.settings.api.admin_token.get_secret_value(), token)


def _token_revoked(request: Request, token_id: str | None) -> bool:
    if token_id is None:  # the bootstrap token is config: it cannot be revoked while running
        return False
    return not services(request).tokens.is_live(token_id)


def signed_in(request: Request) -> Viewer:
    """A dependency: the viewer, or LoginNeeded (a redirect to the login page)."""
    store = sessions(request)
    session_id = request.cookies.get(COOKIE)
    session = store.get(session_id)
    if session is None:
        raise LoginNeeded()
    if _token_revoked(request, session.actor.token_id):
        store.drop(session_id)
        raise LoginNeeded()
    return Viewer(session.actor, session)


def allowed(permission: str) -> Callable[..., Viewer]:
    """A dependency: a signed-in viewer whose role has `permission` (a 403 page otherwise)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def check(viewer: Viewer = Depends(signed_in)) -> Viewer:
        if not viewer.can(permission):
            raise Refused(403, f"Your role ({viewer.role}) may not see or do this.", viewer)
        return viewer

    return check


class Form:
    """An application/x-www-form-urlencoded body (parsed here: no multipart dependency needed)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))


def check_origin(request: Request) -> None:
    """A cross-site form post is refused even before its CSRF token is looked at."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Refused(403, "This form was posted from another site.")


async def read_form(request: Request) -> Form:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "Expected a form post.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "The form is too large.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read.") from None
    return Form(fields)


@dataclass
class Posted:
    viewer: Viewer
    form: Form


def posted_by(permission: str) -> Callable[..., Posted]:
    """A dependency for POST forms: role first (403), then same origin and the session's CSRF token (403)."""
    role_check = allowed(permission)

    def check(request: Request, viewer: Viewer = Depends(role_check), form: Form = Depends(read_form)) -> Posted:
        check_origin(request)
        if not hmac.compare_digest(form.get("csrf").encode(), viewer.csrf.encode()):
            raise Refused(403, "The form's security token is missing or stale; reload the page and try again.", viewer)
        return Posted(viewer, form)

    return check


def set_session_cookie(request: Request, response: Any, session_id: str) -> None:
    response.set_cookie(
        COOKIE, session_id, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https"
    )


def clear_session_cookie(response: Any) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def services(request: Request) -> Services:
    return request.app.state.services
