"""Rendering: the Jinja2 environment, HTML error pages, security headers and the static files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway.services import Services

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_TYPES = {"style.css": "text/css", "dashboard.js": "text/javascript"}  # the only files served
LOGIN_PATH = "/login"

# Pages carry personal data: never cached; scripts and styles only from this origin, no inline code.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a misspelt variable fails the test suite instead of rendering blank
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fingerprint(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    # The content hash in the URL lets browsers cache the file until it changes.
    return f"/dashboard/static/{name}?v={_fingerprint(name)}"


# (href, label, permission): a page is in the menu only for roles that may open it.
NAV = (
    ("/", "Devices", "read_devices"),
    ("/dashboard/feed", "Live feed", "read_devices"),
    ("/dashboard/attendance", "Attendance", "read_records"),
    ("/dashboard/visitors", "Visitors", "read_records"),
    ("/dashboard/vehicles", "Vehicles", "read_vehicles"),
    ("/dashboard/uplink", "Uplink", "read_uplink"),
    ("/dashboard/health", "Health", "read_health"),
)


def nav_active(href: str, path: str) -> bool:
    if href == "/":
        return path == "/" or path.startswith("/dashboard/devices/")
    return path == href or path.startswith(href + "/")


templates.globals.update(static_url=static_url, nav=NAV, nav_active=nav_active)


class LoginNeeded(Exception):
    """No valid session: pages redirect to the login page, JSON endpoints answer 401."""


class Refused(Exception):
    """A page answered with an error page (403 role, 404 unknown, 400 bad request...)."""

    def __init__(self, status: int, message: str, viewer: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.viewer = status, message, viewer


class PageRoute(APIRoute):
    """Turns the dashboard's refusals into HTML pages (the API's handlers answer JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded:
                if request.url.path.endswith(".json"):
                    return JSONResponse({"detail": "not signed in"}, status_code=401, headers=PAGE_HEADERS)
                return RedirectResponse(LOGIN_PATH, status_code=303, headers=PAGE_HEADERS)
            except Refused as refused:
                if request.url.path.endswith(".json"):
                    return JSONResponse({"detail": refused.message}, status_code=refused.status, headers=PAGE_HEADERS)
                return render(
                    request,
                    refused.viewer,
                    "error.html",
                    status=refused.status,
                    title=f"Error {refused.status}",
                    message=refused.message,
                )

        return page_handler


def page_router() -> APIRouter:
    """Dashboard routes are pages, not API operations: kept out of the OpenAPI document."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)


def site_zone(request: Request) -> ZoneInfo:
    svc: Services = request.app.state.services
    return ZoneInfo(svc.settings.site.timezone)


def time_formatter(zone: ZoneInfo) -> Callable[[int | None], str]:
    """Epoch ms as the site's wall-clock time: just the time for today, date and time otherwise."""
    today = datetime.now(zone).date()

    def show(ms: int | None) -> str:
        if ms is None:
            return "—"
        moment = datetime.fromtimestamp(ms / 1000, zone)
        return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M")

    return show


def render(request: Request, viewer: Any, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    zone = site_zone(request)
    flashes = viewer.take_flashes() if viewer is not None else []
    html = templates.get_template(template).render(
        request=request,
        viewer=viewer,
        flashes=flashes,
        when=time_formatter(zone),
        zone=str(zone),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


router = page_router()


@router.get("/dashboard/static/{name}")
def static_file(name: str) -> Response:
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
