"""Employees: create, list, change, remove, and bulk import from CSV. Every change is audited."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from gateway.api.deps import Actor, Page, admin_only, allow, engine, page, paginated
from gateway.auth import audit
from gateway.core.timeutil import iso_utc, now_ms
from gateway.people import rules as people
from gateway.store.models import Person

router = APIRouter(prefix="/api/v1/people", tags=["people"])


def _people_changed(request: Request) -> Any:
    # After the change commits: punches map to people anew, including those stored before.
    yield
    request.app.state.services.people_changed()


changes_people = [Depends(_people_changed)]
read_people = allow("operator", "auditor", "installer")

MAX_CSV_BYTES = 10 * 1024 * 1024
CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/octet-stream", "application/vnd.ms-excel"}
# Card ownership is checked, then written: one writer at a time keeps two requests from taking the same card.
_writes = threading.Lock()


def _checked(check: Callable[[Any], Any]) -> AfterValidator:
    def run(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as e:  # re-raised so the answer reads "cards: card 'x' ..." not "Value error, ..."
            raise PydanticCustomError("invalid", "{reason}", {"reason": str(e)}) from None

    return AfterValidator(run)


PersonId = Annotated[str, Field(pattern=people.ID_PATTERN, description="letters, digits, . _ @ -")]
Name = Annotated[str, Field(min_length=1, max_length=200), _checked(people.check_name)]
Text = Annotated[str, Field(max_length=100), _checked(people.check_text)]
PlatformId = Annotated[str, Field(min_length=1, max_length=100), _checked(people.check_text)]
Cards = Annotated[list[str], Field(description='"<facility>:<number>" or "<number>"'), _checked(people.check_cards)]
Pins = Annotated[
    list[str],
    Field(description="keypad PINs, 4-12 digits; write-only: stored as keyed digests, answered as pin_count"),
    _checked(people.check_pins),
]
DeviceUserIds = Annotated[
    dict[str, str],
    Field(description='device id or "*" -> the user id the device knows'),
    _checked(people.check_device_user_ids),
]
DoorId = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9._-]{1,64})$")]


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doors: list[DoorId] = Field(max_length=1000, description='door ids, or ["*"] for every door')
    schedule: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description='"always" or a schedule id')

    @field_validator("doors")
    @classmethod
    def _star_alone(cls, doors: list[str]) -> list[str]:
        if "*" in doors and len(doors) > 1:
            raise ValueError('"*" means every door, so it stands alone')
        return doors


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: PersonId
    name: Name
    department: Text = ""
    platform_user_id: PlatformId | None = None
    cards: Cards = []
    pins: Pins = []
    device_user_ids: DeviceUserIds = {}
    access: Access | None = None


class PersonPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    department: Text | None = None
    platform_user_id: PlatformId | None = None
    cards: Cards | None = None
    pins: Pins | None = None
    device_user_ids: DeviceUserIds | None = None
    access: Access | None = None


NOT_NULL = ("name", "department", "cards", "pins", "device_user_ids")


def shape(p: Person) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "department": p.department,
        "platform_user_id": p.platform_user_id,
        "cards": list(p.cards),
        "pin_count": len(p.pins or ()),
        "device_user_ids": dict(p.device_user_ids),
        "access": p.access,
        "created_at": iso_utc(p.created_at),
        "updated_at": iso_utc(p.updated_at),
    }


def _get(session: Session, person_id: str) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise HTTPException(404, f"no person {person_id!r}")
    return person


def _owners(session: Session) -> dict[str, str]:
    return people.card_owners(session.execute(select(Person.id, Person.cards)).all())


def _check_cards(session: Session, person_id: str, cards: list[str]) -> None:
    clash = people.card_conflict(person_id, cards, _owners(session))
    if clash is not None:
        raise HTTPException(409, f"card {clash[0]!r} already belongs to person {clash[1]!r}")


def pin_digest(request: Request) -> Callable[[str], str]:
    return request.app.state.services.access.pin_digest


def _digest_pins(session: Session, person_id: str, pins: list[str], digest: Callable[[str], str]) -> list[str]:
    """The PINs as stored; one person's PIN may not be another's (a keypad entry names one holder)."""
    digests = [digest(pin) for pin in pins]
    for other_id, other_pins in session.execute(select(Person.id, Person.pins).where(Person.id != person_id)):
        if set(digests) & set(other_pins or ()):
            raise HTTPException(409, f"a PIN is already in use by person {other_id!r}; choose another")
    return digests


@router.post("", status_code=201, dependencies=changes_people)
def create_person(
    body: PersonCreate,
    actor: Actor = Depends(admin_only),
    eng: Any = Depends(engine),
    digest: Callable[[str], str] = Depends(pin_digest),
) -> dict[str, Any]:
    with _writes, Session(eng) as session:
        if session.get(Person, body.id) is not None:
            raise HTTPException(409, f"person {body.id!r} already exists")
        _check_cards(session, body.id, body.cards)
        pins = _digest_pins(session, body.id, body.pins, digest)
        now = now_ms()
        person = Person(**body.model_dump(exclude={"pins"}), pins=pins, created_at=now, updated_at=now)
        audit.record(session, actor.name, "create", "person", person.id, None, shape(person))
        session.add(person)
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, f"person {body.id!r} already exists") from None
        return shape(person)


@router.get("", dependencies=[Depends(read_people)])
def list_people(p: Page = Depends(page), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        query = select(Person).order_by(Person.id).limit(p.limit + 1)
        if p.after is not None:
            query = query.where(Person.id > p.after)
        rows = session.execute(query).scalars().all()
        return paginated(list(rows), p.limit, shape)


@router.get("/{person_id}", dependencies=[Depends(read_people)])
def get_person(person_id: Annotated[str, Path(max_length=64)], eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        return shape(_get(session, person_id))


@router.patch("/{person_id}", dependencies=changes_people)
def patch_person(
    person_id: Annotated[str, Path(max_length=64)],
    body: PersonPatch,
    actor: Actor = Depends(admin_only),
    eng: Any = Depends(engine),
    digest: Callable[[str], str] = Depends(pin_digest),
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name in NOT_NULL:
        if name in changes and changes[name] is None:
            raise HTTPException(422, f"{name}: may not be null")
    with _writes, Session(eng) as session:
        person = _get(session, person_id)
        if "cards" in changes:
            _check_cards(session, person_id, changes["cards"])
        if "pins" in changes:
            changes["pins"] = _digest_pins(session, person_id, changes["pins"], digest)
        before, pins_before = shape(person), list(person.pins or ())
        for name, value in changes.items():
            setattr(person, name, value)
        if shape(person) == before and list(person.pins) == pins_before:
            return before  # nothing changed: nothing to write or audit
        person.updated_at = now_ms()
        audit.record(session, actor.name, "update", "person", person_id, before, shape(person))
        session.add(person)
        session.commit()
        return shape(person)


@router.delete("/{person_id}", status_code=204, dependencies=changes_people)
def delete_person(
    person_id: Annotated[str, Path(max_length=64)], actor: Actor = Depends(admin_only), eng: Any = Depends(engine)
) -> Response:
    with _writes, Session(eng) as session:
        person = _get(session, person_id)
        audit.record(session, actor.name, "delete", "person", person_id, shape(person), None)
        session.delete(person)
        session.commit()
    return Response(status_code=204)


async def _read_csv(request: Request) -> bytes:
    kind = request.headers.get("content-type", "text/csv").split(";")[0].strip().lower()
    if kind and kind not in CSV_TYPES:
        raise HTTPException(415, f"send the CSV file itself as the body with Content-Type text/csv, not {kind!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CSV_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CSV_BYTES:
            raise HTTPException(413, f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    return bytes(body)


@router.post(
    "/import",
    dependencies=changes_people,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
    description="Header row: id,name[,department,platform_user_id,cards,device_user_ids]. cards as "
    '"10:1093;2001", device_user_ids as "att-01=101;*=E1001". All rows or none are stored.',
)
async def import_people(request: Request, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> Any:
    body = await _read_csv(request)
    try:
        rows = people.parse_csv(people.decode(body))
    except people.BadRows as e:
        errors = [{"row": x.row, "field": x.field, "message": x.message} for x in e.errors]
        return JSONResponse({"detail": e.detail, "errors": errors}, status_code=422)
    except people.BadFile as e:
        raise HTTPException(422, str(e)) from None
    return await run_in_threadpool(_store_import, eng, actor, rows)


def _store_import(eng: Any, actor: Actor, rows: list[people.ImportRow]) -> dict[str, int]:
    """One transaction: every row is stored, or (on a card clash) none is."""
    with _writes, Session(eng) as session:
        existing = {p.id: p for p in session.execute(select(Person)).scalars()}
        clash = people.import_conflict(rows, people.card_owners((p.id, p.cards) for p in existing.values()))
        if clash is not None:
            row, card, other = clash
            raise HTTPException(409, f"row {row.row}: card {card!r} already belongs to person {other!r}")
        created = updated = 0
        now = now_ms()
        for row in rows:
            person = existing.get(row.id)
            if person is None:
                person = Person(id=row.id, **row.fields, created_at=now, updated_at=now)
                audit.record(session, actor.name, "import", "person", row.id, None, shape(person))
                created += 1
            else:
                before = shape(person)
                for name, value in row.fields.items():
                    setattr(person, name, value)
                if shape(person) != before:
                    person.updated_at = now
                    audit.record(session, actor.name, "import", "person", row.id, before, shape(person))
                updated += 1
            session.add(person)
        session.commit()
    return {"created": created, "updated": updated}
