"""The HTTP side of the platform stand-in: DingTalk routes, the webhook receiver and the admin routes.

Handlers stay thin (parse, one call into `PlatformState`, serialise with
orjson) because the benchmark drives hundreds of calls a second through them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from firmware_stubs.platform_state import SYSTEM_BUSY, PlatformState, error

ANSWER, DROP = "answer", "drop"
TRANSPORT_KEY = "standin.transport"
ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} error</title></head>"
    "<body><h1>{status} error</h1><p>The service behind this proxy did not answer.</p></body></html>"
)


@dataclass(eq=False)
class _Slot:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = ANSWER


class HangLot:
    """Requests held by a hang fault. Lives on the server's event loop; touch it only from there."""

    def __init__(self) -> None:
        self._slots: set[_Slot] = set()

    @property
    def count(self) -> int:
        return len(self._slots)

    async def hold(self, seconds: float | None) -> str:
        """Wait `seconds` (None: until released); ANSWER to go on, DROP to close without an answer."""
        slot = _Slot()
        self._slots.add(slot)
        try:
            await asyncio.wait_for(slot.event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._slots.discard(slot)
        return slot.outcome

    def release_all(self, outcome: str = ANSWER) -> None:
        for slot in self._slots:
            slot.outcome = outcome
            slot.event.set()


class ExposeTransport:
    """Puts uvicorn's socket transport into the scope, so a handler can close it without answering.

    ASGI has no way to drop a connection; uvicorn's `send` is a method of an
    object holding the transport, which is the only reason this works.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[TRANSPORT_KEY] = getattr(getattr(send, "__self__", None), "transport", None)
        await self.app(scope, receive, send)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def drop_connection(request: Request) -> Response:
    transport = request.scope.get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("the server does not expose its transport; cannot drop the connection")
    transport.close()
    # Return only once uvicorn has seen the close, so the response below is discarded, not written.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    return Response(status_code=204)


def build_app(
    state: PlatformState,
    lot: HangLot,
    *,
    webhook_path: str,
    go_down_for: Callable[[float], None],
) -> ASGIApp:
    async def answer_fault(request: Request, api: str) -> Response | None:
        """The answer an injected fault gives instead of the platform, or None to serve the call."""
        fault = state.take_fault(api)
        if fault is None:
            return None
        if fault.kind == "busy":
            return json_response(error(SYSTEM_BUSY, "system busy, please retry"))
        if fault.kind == "html":
            return HTMLResponse(ERROR_PAGE.format(status=fault.status), status_code=fault.status)
        if fault.kind == "ip_throttle":
            return json_response({"status": 1111, "wait": fault.wait})
        if await lot.hold(fault.seconds) == DROP:
            return await drop_connection(request)
        return None

    async def gettoken(request: Request) -> Response:
        if (early := await answer_fault(request, "gettoken")) is not None:
            return early
        query = request.query_params
        return json_response(state.issue_token(query.get("appkey"), query.get("appsecret")))

    async def upload(request: Request) -> Response:
        if (early := await answer_fault(request, "upload")) is not None:
            return early
        if refused := state.admit("upload", request.query_params.get("access_token")):
            return json_response(refused)
        answer, fault = state.upload(parse_json(await request.body()))
        # With an after-record fault the record is stored, and now the client loses the answer.
        if fault is not None and (fault.kind == "record_then_drop" or await lot.hold(fault.seconds) == DROP):
            return await drop_connection(request)
        return json_response(answer)

    async def list_record(request: Request) -> Response:
        if (early := await answer_fault(request, "listrecord")) is not None:
            return early
        if refused := state.admit("listrecord", request.query_params.get("access_token")):
            return json_response(refused)
        return json_response(state.list_records(parse_json(await request.body())))

    async def webhook(request: Request) -> Response:
        fault = state.webhook.take_fault()
        if fault is not None and fault.kind == "fail":
            return json_response({"error": fault.reason}, fault.status)
        if fault is not None and await lot.hold(fault.seconds) == DROP:
            return await drop_connection(request)
        headers = request.headers
        status, answer = state.webhook.deliver(
            headers.get("x-gateway-timestamp"),
            headers.get("x-gateway-signature"),
            headers.get("idempotency-key"),
            await request.body(),
        )
        return json_response(answer, status)

    routes = [
        Route("/gettoken", gettoken, methods=["GET"]),
        Route("/topapi/attendance/record/upload", upload, methods=["POST"]),
        Route("/attendance/listRecord", list_record, methods=["POST"]),
        Route(webhook_path, webhook, methods=["POST"]),
        *admin_routes(state, lot, go_down_for),
    ]
    return ExposeTransport(Starlette(routes=routes))


# Admin fault kinds -> (PlatformState method, the body fields it takes besides n).
FAULT_KNOBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "busy": ("busy", ("apis",)),
    "html": ("html_error", ("status", "apis")),
    "ip_throttle": ("ip_throttle", ("wait", "apis")),
    "hang": ("hang", ("seconds", "apis")),
    "record_then_hang": ("record_then_hang", ("seconds",)),
    "record_then_drop": ("record_then_drop", ()),
}
WEBHOOK_FAULT_FIELDS = {"fail": ("status", "reason"), "hang": ("seconds",)}


def admin_routes(state: PlatformState, lot: HangLot, go_down_for: Callable[[float], None]) -> list[Route]:
    """`/_standin/...`: the knobs and counters for a process that cannot call the object (the demo)."""

    def knob(action: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body = parse_json(raw) if raw else {}
            if not isinstance(body, dict):
                return json_response({"error": "body must be a JSON object"}, 400)
            try:
                result = action(body)
            except (KeyError, TypeError, ValueError) as exc:
                return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
            return json_response(result if result is not None else {"ok": True})

        return endpoint

    def add_fault(body: dict[str, Any]) -> None:
        method, fields = FAULT_KNOBS[body["kind"].replace("-", "_")]
        getattr(state, method)(int(body.get("n", 1)), **{k: body[k] for k in fields if k in body})

    def add_webhook_fault(body: dict[str, Any]) -> None:
        kind = body["kind"]
        fields = WEBHOOK_FAULT_FIELDS[kind]
        getattr(state.webhook, kind)(int(body.get("n", 1)), **{k: body[k] for k in fields if k in body})

    def go_down(body: dict[str, Any]) -> None:
        seconds = float(body["seconds"])  # required: nothing could bring it back over HTTP
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        go_down_for(seconds)

    def duplicates(_: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"userid": u, "user_check_time": t, "device_id": d, "count": n}
            for (u, t, d), n in state.duplicates().items()
        ]

    def stats(_: dict[str, Any]) -> dict[str, Any]:
        return {**state.stats(), "hung": lot.count}

    post = {
        "expire-tokens": lambda b: state.expire_tokens(),
        "qps": lambda b: state.set_qps(b["qps"]),
        "known-users": lambda b: state.set_known_users(b["userids"]),
        "fault": add_fault,
        "clear-faults": lambda b: state.clear_faults(),
        "release": lambda b: lot.release_all(ANSWER),
        "reset": lambda b: state.reset(),
        "down": go_down,
        "webhook/fault": add_webhook_fault,
        "webhook/clear-faults": lambda b: state.webhook.clear_faults(),
        "webhook/reject-types": lambda b: state.webhook.reject_types(b["types"]),
    }
    get = {
        "stats": stats,
        "records": lambda b: state.records(),
        "duplicates": duplicates,
        "webhook/records": lambda b: state.webhook.records(),
    }
    return [Route(f"/_standin/{name}", knob(action), methods=["POST"]) for name, action in post.items()] + [
        Route(f"/_standin/{name}", knob(action), methods=["GET"]) for name, action in get.items()
    ]
