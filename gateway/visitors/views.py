"""Visits as they are read: the API's invitation and blocklist views, and the doors' rows.

Read-only; writes (invitations, passages, housekeeping) are in `gateway.visitors.service`. A visit as
the roll call lists it (and the platform receives it) is `gateway.store.shapes.visit`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from gateway.access.decide import card_key
from gateway.core.timeutil import iso_utc
from gateway.store.models import Visit, VisitorBlock
from gateway.store.shapes import on_site

# A closed invitation stays in the door snapshot a day, so it is denied with its reason.
RECENT_MS = 24 * 3600 * 1000


def _iso(ms: int | None) -> str | None:
    return iso_utc(ms) if ms is not None else None


def status(v: Visit, now: int) -> str:
    if v.anonymised_at is not None:
        return "anonymised"
    if v.revoked_at is not None:
        return "revoked"
    if now >= v.valid_until:
        return "expired"
    if now < v.valid_from:
        return "not_yet_valid"
    return "valid"


def invitation_view(v: Visit, now: int, secret: bool = False) -> dict[str, Any]:
    """An invitation as the API answers it; the credential's value only when `secret` (at creation)."""
    credential: dict[str, Any] = {"kind": v.credential_kind}
    if secret:
        credential["value"] = v.credential_value
    return {
        "id": str(v.id),
        "name": v.name,
        "phone": v.phone,
        "company": v.company,
        "host": v.host_person_id,
        "window": {"start": iso_utc(v.window_start), "end": iso_utc(v.window_end)},
        "doors": list(v.doors),
        "credential": credential,
        "valid_from": iso_utc(v.valid_from),
        "valid_until": iso_utc(v.valid_until),
        "status": status(v, now),
        "revoked_at": _iso(v.revoked_at),
        "checked_in_at": _iso(v.checked_in_at),
        "checked_out_at": _iso(v.checked_out_at),
        "checkout_reason": v.checkout_reason,
        "on_site": on_site(v),
        "anonymised_at": _iso(v.anonymised_at),
        "created_at": iso_utc(v.created_at),
        "created_by": v.created_by,
    }


def block_view(b: VisitorBlock) -> dict[str, Any]:
    return {
        "id": str(b.id),
        "name": b.name,
        "phone": b.phone,
        "reason": b.reason,
        "created_at": iso_utc(b.created_at),
        "created_by": b.created_by,
    }


def door_rows(conn: Connection, now: int) -> list[dict[str, Any]]:
    """The visitors the doors should know, as `gateway.access.decide.build` takes them.

    Every invitation that has not ended more than `RECENT_MS` ago (so a late or
    revoked visitor is denied as expired or revoked, not as unknown). A
    credential is unique among open invitations only, so where a closed one
    shares it with an open one the open one keeps it (the snapshot would
    otherwise drop both).
    """
    t = Visit.__table__.c
    query = select(
        t.id, t.credential_kind, t.credential_value, t.doors, t.valid_from, t.valid_until, t.revoked_at
    ).where(t.anonymised_at.is_(None), t.credential_value.is_not(None), t.valid_until > now - RECENT_MS)
    best: dict[tuple[str, str], tuple[tuple[bool, int, int], Any]] = {}
    for r in conn.execute(query):
        value = card_key(r.credential_value) if r.credential_kind == "card" else str(r.credential_value).strip()
        rank = (r.revoked_at is None and r.valid_until > now, r.valid_until, r.id)
        key = (r.credential_kind, value)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, r)
    return [
        {
            "id": str(r.id),
            "credential": {"kind": r.credential_kind, "value": r.credential_value},
            "doors": list(r.doors or ()),
            "valid_from": r.valid_from,
            "valid_until": r.valid_until,
            "revoked": r.revoked_at is not None,
        }
        for _, r in best.values()
    ]
