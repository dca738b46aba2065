"""Devices (the home page), a device's page with its command buttons, and the live feed."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gateway.core.errors import NotFound
from gateway.core.errors import Refused as ServiceRefused
from gateway.dashboard import queries
from gateway.dashboard.auth import Posted, Viewer, allowed, posted_by, services
from gateway.dashboard.web import PAGE_HEADERS, Refused, page_router, render, site_zone, time_formatter
from gateway.devices.families import family
from gateway.management.commands import DEFAULT_COMMAND_TIMEOUT_S, masked_args
from gateway.services import Services

router = page_router()
DeviceId = Annotated[str, Path(max_length=64)]
COMMAND_LABELS = {"open_door": "Open door", "sync_time": "Sync time"}
FEED_LIMIT = 50
COMMAND_TIMEOUT_S = DEFAULT_COMMAND_TIMEOUT_S


def offered_commands(viewer: Viewer, device: dict[str, Any]) -> list[tuple[str, str]]:
    """The command buttons this viewer gets for this device: none where the protocol takes no commands."""
    if family(device["protocol"]).commands is None:
        return []
    names = (["open_door"] if device["kind"] == "access" else []) + ["sync_time"]
    return [(name, COMMAND_LABELS[name]) for name in names if viewer.may_send(name)]


def feed_kinds(viewer: Viewer) -> tuple[str, ...]:
    """Punches, door events and fixes are records (read_records); device status is for every device reader."""
    return tuple(queries.RECORD_TABLES) if viewer.can("read_records") else ("status",)


@router.get("/")
def devices_page(
    request: Request, viewer: Viewer = Depends(allowed("read_devices")), svc: Services = Depends(services)
) -> Response:
    since, _ = queries.day_bounds(site_zone(request))
    devices = queries.devices_overview(svc.engine, since)
    online = sum(1 for d in devices if d["online"])
    return render(request, viewer, "devices.html", title="Devices", devices=devices, online=online)


@router.get("/dashboard/devices/{device_id}")
def device_page(
    request: Request,
    device_id: DeviceId,
    viewer: Viewer = Depends(allowed("read_devices")),
    svc: Services = Depends(services),
) -> Response:
    detail = queries.device_detail(svc.engine, device_id)
    if detail is None:
        raise Refused(404, f"There is no device {device_id!r}.", viewer)
    kinds = feed_kinds(viewer)  # the same records the live feed shows this role
    detail["events"] = [e for e in detail["events"] if e["kind"] in kinds]
    if viewer.role != "admin":  # a terminal user's password or card is for admins only
        detail["commands"] = [{**c, "args": masked_args(c["args"])} for c in detail.get("commands", [])]
    return render(
        request,
        viewer,
        "device.html",
        title=f"Device {device_id}",
        **detail,
        commands_offered=offered_commands(viewer, detail["device"]),
    )


@router.post("/dashboard/devices/{device_id}/commands")
def send_command(
    device_id: DeviceId, posted: Posted = Depends(posted_by("send_commands")), svc: Services = Depends(services)
) -> Response:
    viewer, name = posted.viewer, posted.form.get("command")
    if name not in COMMAND_LABELS:
        raise Refused(400, "Unknown command.", viewer)
    if not viewer.may_send(name):
        raise Refused(403, f"Your role ({viewer.role}) may not send {name}.", viewer)
    try:  # the service the API calls: the same checks (device, protocol) and the same queue
        command = svc.commands.submit(device_id, name, {}, COMMAND_TIMEOUT_S, viewer.actor.name)
        viewer.flash("ok", f"{COMMAND_LABELS[name]} queued for {device_id} (command {command.id}).")
    except NotFound:
        raise Refused(404, f"There is no device {device_id!r}.", viewer) from None
    except ServiceRefused as refused:
        viewer.flash("error", f"{COMMAND_LABELS[name]} was not queued: {refused.message}")
    return RedirectResponse(f"/dashboard/devices/{quote(device_id, safe='')}", status_code=303, headers=PAGE_HEADERS)


@router.get("/dashboard/feed")
def feed_page(
    request: Request, viewer: Viewer = Depends(allowed("read_devices")), svc: Services = Depends(services)
) -> Response:
    items, cursor = queries.feed(svc.engine, feed_kinds(viewer), None, FEED_LIMIT)
    return render(
        request,
        viewer,
        "feed.html",
        title="Live feed",
        items=items,
        cursor=cursor.encode(),
        kinds=feed_kinds(viewer),
        limit=FEED_LIMIT,
    )


@router.get("/dashboard/feed.json")
def feed_json(
    request: Request,
    after: Annotated[str | None, Query(max_length=200)] = None,
    viewer: Viewer = Depends(allowed("read_devices")),
    svc: Services = Depends(services),
) -> Response:
    """What arrived after `after` (the cursor of the last answer), newest first, for the feed page to prepend."""
    items, cursor = queries.feed(svc.engine, feed_kinds(viewer), queries.FeedCursor.decode(after), FEED_LIMIT)
    when = time_formatter(site_zone(request))
    shaped = [
        {
            "key": i["key"],
            "kind": i["kind"],
            "device_id": i["device_id"],
            "at": when(i["time_ms"]),
            "summary": i["summary"],
            "href": f"/dashboard/devices/{quote(i['device_id'], safe='')}",
        }
        for i in items
    ]
    return JSONResponse({"items": shaped, "cursor": cursor.encode()}, headers=PAGE_HEADERS)
