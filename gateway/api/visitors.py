"""Visitors: invitations (with their door credential), the visits roll call and the blocklist. Every change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from gateway.api.deps import Actor, Page, admin_only, allow, page, paginated, read_records, services
from gateway.core.timeutil import TimeError, now_ms, to_epoch_ms
from gateway.people import rules as people
from gateway.services import Services
from gateway.store import shapes
from gateway.visitors.rules import EARLIEST, LATEST, check_phone
from gateway.visitors.views import block_view, invitation_view

router = APIRouter(tags=["visitors"])
invite_visitors = allow("operator")  # and admin
read_visitors = read_records  # operator, auditor (and admin)


def _checked(check: Any) -> AfterValidator:
    def run(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as e:
            raise PydanticCustomError("invalid", "{reason}", {"reason": str(e)}) from None

    return AfterValidator(run)


Name = Annotated[str, Field(min_length=1, max_length=200), _checked(lambda v: people.check_name(v).strip())]
Phone = Annotated[str, Field(min_length=1, max_length=40), _checked(check_phone)]
Company = Annotated[str, Field(max_length=200), _checked(lambda v: people.check_text(v, 200).strip())]
Reason = Annotated[str, Field(max_length=500), _checked(lambda v: people.check_text(v, 500))]
DoorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime = Field(description="RFC 3339 with offset")
    end: AwareDatetime = Field(description="RFC 3339 with offset; after start, at most 7 days later")


class InvitationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    phone: Phone | None = None
    company: Company | None = None
    host: str = Field(pattern=people.ID_PATTERN, description="the id of the person the visitor comes to see")
    window: Window
    doors: list[DoorId] = Field(min_length=1, max_length=100, description="door ids (an exit reader's too)")
    credential: Literal["qr", "pin", "card"] = Field(
        "qr", description="qr: a payload string; pin: 6 digits for the keypad; card: a temporary card number"
    )


class BlockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    phone: Phone | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _name_or_phone(self) -> BlockBody:
        if self.name is None and self.phone is None:
            raise ValueError("give a name, a phone or both")
        return self


def _ms(name: str, value: datetime) -> int:
    try:
        if not (EARLIEST <= value <= LATEST):
            raise HTTPException(422, f"window.{name}: outside 2000..2199")
        return to_epoch_ms(value)
    except (OverflowError, TimeError):
        raise HTTPException(422, f"window.{name}: out of range") from None


def _id(value: str, what: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise HTTPException(404, f"no {what} {value[:70]!r}")
    return int(value)


@router.post("/api/v1/visitors/invitations", status_code=201)
def invite(
    body: InvitationBody, actor: Actor = Depends(invite_visitors), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Invite a visitor; the answer carries the credential, shown this once. It opens the invitation's doors
    from 15 minutes before the window until its end."""
    start, end = _ms("start", body.window.start), _ms("end", body.window.end)
    return svc.visitors.invite(
        actor.name,
        name=body.name,
        host=body.host,
        start_ms=start,
        end_ms=end,
        doors=list(dict.fromkeys(body.doors)),
        kind=body.credential,
        phone=body.phone,
        company=body.company or None,
    )


@router.get("/api/v1/visitors/invitations", dependencies=[Depends(read_visitors)])
def list_invitations(
    p: Page = Depends(page),
    svc: Services = Depends(services),
    host: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    rows = svc.visitors.invitations(p.after_id, p.limit + 1, host)
    now = now_ms()
    return paginated(rows, p.limit, lambda v: invitation_view(v, now))


@router.delete("/api/v1/visitors/invitations/{invitation_id}", status_code=204)
def revoke(
    invitation_id: Annotated[str, Path(max_length=20)],
    actor: Actor = Depends(invite_visitors),
    svc: Services = Depends(services),
) -> Response:
    """Revoke: the credential stops working at the doors before this answers. The visit stays listed."""
    svc.visitors.revoke(actor.name, _id(invitation_id, "invitation"))
    return Response(status_code=204)


@router.get("/api/v1/visits", dependencies=[Depends(read_visitors)])
def list_visits(
    p: Page = Depends(page),
    svc: Services = Depends(services),
    on_site: Annotated[bool | None, Query(description="true: the evacuation roll call; false: everyone else")] = None,
) -> dict[str, Any]:
    """Every invitation as a visit: checked in at the first granted entry, out at an exit reader or the window's end."""
    rows, names = svc.visitors.visits(p.after_id, p.limit + 1, on_site)
    return paginated(rows, p.limit, lambda v: shapes.visit(v, names.get(v.host_person_id)))


@router.post("/api/v1/visitors/blocklist", status_code=201)
def add_block(body: BlockBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)) -> dict[str, Any]:
    """An invitation for a visitor with this name (any case) or phone (same digits) is refused (409)."""
    return svc.visitors.block(actor.name, body.name, body.phone, body.reason)


@router.get("/api/v1/visitors/blocklist", dependencies=[Depends(read_visitors)])
def list_blocks(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    return paginated(svc.visitors.blocklist(p.after_id, p.limit + 1), p.limit, block_view)


@router.delete("/api/v1/visitors/blocklist/{entry_id}", status_code=204)
def remove_block(
    entry_id: Annotated[str, Path(max_length=20)], actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    svc.visitors.unblock(actor.name, _id(entry_id, "blocklist entry"))
    return Response(status_code=204)
