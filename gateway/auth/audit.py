"""The audit log: every change made through the API, written in the change's own transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from gateway.core.timeutil import now_ms
from gateway.store.models import AuditEntry

# Never written to the log, at any depth.
SECRET_KEYS = frozenset(
    {
        "credentials",
        "credential_hash",
        "secret_enc",
        "token",
        "token_hash",
        "password",
        "mqtt_password",
        "scbk",
        "auth_code",
        "secret",
        "app_secret",
    }
)


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def record(
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session; it commits with the change it describes."""
    session.add(
        AuditEntry(
            time=now_ms(),
            actor=actor[:100],
            action=action,
            target_type=target_type,
            target_id=str(target_id)[:100],
            before=scrub(before) if before is not None else None,
            after=scrub(after) if after is not None else None,
        )
    )
