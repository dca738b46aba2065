"""The dashboard: server-rendered pages (Jinja2) over the same services as the API, in the same app.

Pages are not API operations (they are left out of the OpenAPI document);
they take a session cookie made from an API token at /login and apply the
API's role rules (see auth.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dashboard import devices, fleet, health, login, people, web

router = APIRouter(include_in_schema=False)
for part in (web, login, devices, people, fleet, health):
    router.include_router(part.router)
