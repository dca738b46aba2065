"""Who is calling: an API token (or the bootstrap admin token from config) turned into an actor.

The one check of a presented token, used by the API's bearer authentication and the dashboard's sign-in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import Engine

from gateway.auth import tokens

ROLES = ("admin", "installer", "operator", "auditor")


@dataclass(frozen=True)
class Actor:
    """Who is calling: the audit log names them."""

    name: str
    role: str
    token_id: str | None = None


def authenticate(engine: Engine, bootstrap_token: str, presented: str) -> Actor | None:
    """The actor a presented token stands for, or None: not the bootstrap token nor a live stored one."""
    if bootstrap_token and hmac.compare_digest(presented.encode(), bootstrap_token.encode()):
        return Actor("bootstrap-admin", "admin")
    token = tokens.lookup(engine, presented)
    if token is None:
        return None
    return Actor(f"token:{token.name}", token.role, token.id)
