"""Employees: create, list, change, remove, and bulk import from CSV. Every change is audited (by the service)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from gateway.api.deps import Actor, Page, admin_only, allow, page, paginated, services
from gateway.people import rules as people
from gateway.people.service import person_view
from gateway.services import Services

router = APIRouter(prefix="/api/v1/people", tags=["people"])
read_people = allow("operator", "auditor", "installer")

MAX_CSV_BYTES = 10 * 1024 * 1024
CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/octet-stream", "application/vnd.ms-excel"}


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


@router.post("", status_code=201)
def create_person(
    body: PersonCreate, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    return svc.people.create(actor.name, body.model_dump())


@router.get("", dependencies=[Depends(read_people)])
def list_people(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    return paginated(svc.people.page(p.limit + 1, p.after), p.limit, person_view)


@router.get("/{person_id}", dependencies=[Depends(read_people)])
def get_person(person_id: Annotated[str, Path(max_length=64)], svc: Services = Depends(services)) -> dict[str, Any]:
    return svc.people.get(person_id)


@router.patch("/{person_id}")
def patch_person(
    person_id: Annotated[str, Path(max_length=64)],
    body: PersonPatch,
    actor: Actor = Depends(admin_only),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return svc.people.update(actor.name, person_id, body.model_dump(exclude_unset=True))


@router.delete("/{person_id}", status_code=204)
def delete_person(
    person_id: Annotated[str, Path(max_length=64)],
    actor: Actor = Depends(admin_only),
    svc: Services = Depends(services),
) -> Response:
    svc.people.delete(actor.name, person_id)
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
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
    description="Header row: id,name[,department,platform_user_id,cards,device_user_ids]. cards as "
    '"10:1093;2001", device_user_ids as "att-01=101;*=E1001". All rows or none are stored.',
)
async def import_people(request: Request, actor: Actor = Depends(admin_only), svc: Services = Depends(services)) -> Any:
    body = await _read_csv(request)
    try:
        rows = people.parse_csv(people.decode(body))
    except people.BadRows as e:
        errors = [{"row": x.row, "field": x.field, "message": x.message} for x in e.errors]
        return JSONResponse({"detail": e.detail, "errors": errors}, status_code=422)
    except people.BadFile as e:
        raise HTTPException(422, str(e)) from None
    return await run_in_threadpool(svc.people.import_rows, actor.name, rows)
