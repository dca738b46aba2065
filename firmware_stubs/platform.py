"""A stand-in for the office platform (DingTalk and a customer webhook), served over real HTTP.

Tests, benchmarks and the demo point the gateway's `uplink.dingtalk.base_url`
and `uplink.webhook.url` at it. It keeps everything it accepted, counts
resends (it never de-duplicates DingTalk uploads: a resend is a second punch,
which is exactly what the gateway must avoid), and can be told at runtime to
misbehave the ways the real service does.

DingTalk routes (answers are HTTP 200 with an `errcode` unless a fault says otherwise):

- `GET /gettoken?appkey=&appsecret=` -> `{"errcode": 0, "errmsg": "ok",
  "access_token", "expires_in"}`. Asking again while the token is valid
  returns the same token with its lifetime renewed. Wrong key or secret:
  40089 "invalid appkey or appsecret". Not subject to the QPS limit.
- `POST /topapi/attendance/record/upload?access_token=` with
  `{"userid", "device_name", "device_id", "user_check_time" (epoch ms, 13
  digits, within 180 days of now), "photo_url"?}` -> `{"errcode": 0,
  "success": true, "errmsg": "ok", "request_id"}`. A missing or ill-typed
  field, or a time too far from now: 40035 with the field named in errmsg.
  A user id outside `known_users` (when that set is not empty): 60121.
- `POST /attendance/listRecord?access_token=` with `{"userIds": [1..50 ids],
  "checkDateFrom", "checkDateTo" ("yyyy-MM-dd HH:mm:ss" in the org's time
  zone, at most 7 days apart, both ends included)}` -> `{"errcode": 0,
  "errmsg": "ok", "recordresult": [{"id", "userId", "userCheckTime",
  "deviceId", "sourceType": "ATM", "checkType", "timeResult",
  "locationResult", "baseCheckTime", "workDate"}]}`, sorted by check time.
  No shifts are modelled: checkType is OnDuty before local noon, else
  OffDuty, and baseCheckTime is the punch time itself.
- Tokens: unknown or missing 40014 "invalid access_token"; past their lifetime
  (or after `expire_tokens()`) 42001 "access_token expired".
- QPS: upload and listRecord calls with a valid token are let through at most
  `qps` in any rolling second; the rest answer 90018, are not stored and are
  counted in `throttled`. Refused calls do not use up the window.

Faults, each for the next n matching calls, served oldest first; `apis` picks
among "gettoken", "upload", "listrecord" (default all three):
`busy` (errcode -1), `html_error` (text/html page, status 502 or as given),
`ip_throttle` (`{"status": 1111, "wait": 5}`), `hang` (held for `seconds`, or
until `release_hung()`, then served as usual: a client that gave up meanwhile
may still have its upload stored then, as with a slow server), and for uploads only
`record_then_hang` / `record_then_drop` (stored, then the answer is held, or
the connection closed with no answer: the lost-answer case). `go_down()`
closes the port and every open connection (held requests are dropped
unanswered); `come_up()` listens on the same port again, memory intact.

Webhook receiver, `POST /webhook` (path configurable), the contract the
gateway's sender follows:

- Headers: `X-Gateway-Timestamp: <epoch ms>`, `X-Gateway-Signature:
  sha256=<lowercase hex HMAC-SHA256 with the shared secret over
  f"{timestamp}.".encode() + raw_body>`, `Idempotency-Key: <batch key>`.
- Body: `{"site": str, "records": [{"type": "punch"|"visit"|"trip"|...,
  "idempotency_key": str, "record": {...}}, ...]}`.
- 200 `{"accepted": n, "duplicates": m}`: n records new to the receiver, m
  whose idempotency_key it already had, from an earlier batch or earlier in
  this one (acknowledged, counted as duplicate deliveries, not stored again).
- 401 `{"error"}`: signature missing or wrong, or timestamp more than 5
  minutes from the receiver's clock. 400 `{"error"}`: no Idempotency-Key or
  a malformed body. 422 `{"error", "rejected": [keys]}`: the batch holds a
  record type the receiver was told to refuse; nothing of it is stored.
  Any of these, and the injected 5xx/4xx failures, store nothing, so the
  sender may resend the whole batch.

Admin routes for another process (the demo), all JSON: POST
`/_standin/expire-tokens`, `/qps {"qps"}`, `/known-users {"userids"}`,
`/fault {"kind", "n", "apis"?, "seconds"?, "status"?, "wait"?}` (kind as the
method names above: busy, html, ip_throttle, hang, record_then_hang,
record_then_drop), `/clear-faults`, `/release`, `/reset`, `/down {"seconds"}`
(down, then up again after that long), `/webhook/fault {"kind": "fail"|"hang",
"n", "status"?, "reason"?, "seconds"?}`, `/webhook/clear-faults`,
`/webhook/reject-types {"types"}`; a bad body answers 400 {"error"};
GET `/_standin/stats`, `/records`, `/duplicates`, `/webhook/records`.

Run alone: python -m firmware_stubs.platform --port 9000 --qps 20 --webhook-secret s
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Self

import uvicorn

from firmware_stubs.platform_app import ANSWER, DROP, HangLot, build_app
from firmware_stubs.platform_state import PlatformState
from firmware_stubs.platform_webhook import sign

__all__ = ["PlatformStandIn", "main", "sign"]


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # in the project's dependencies off Windows; the faster loop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only when the listener
    # says TCP, and without it every answer waits out the client's delayed ACK (some 40 ms).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Coming back up on the same port must work while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class PlatformStandIn(PlatformState):
    """The stand-in served by uvicorn on a background thread with its own event loop.

    Knobs and counters are the thread-safe methods of `PlatformState`; the
    webhook's are on `.webhook`. This class adds serving, going down and up,
    and releasing held requests.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        qps: int | None = 20,
        known_users: Iterable[str] | None = None,
        webhook_secret: str = "standin-webhook-secret",
        *,
        webhook_path: str = "/webhook",
        app_key: str = "standin-key",
        app_secret: str = "standin-secret",
        token_ttl: float = 7200,
        org_tz: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            qps=qps,
            known_users=known_users,
            app_key=app_key,
            app_secret=app_secret,
            token_ttl=token_ttl,
            org_tz=org_tz,
            webhook_secret=webhook_secret,
            clock=clock,
        )
        self.host, self.port, self.webhook_path = host, port, webhook_path
        self._lot = HangLot()
        self._app = build_app(self, self._lot, webhook_path=webhook_path, go_down_for=self._go_down_in_background)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._lifecycle = threading.Lock()  # go_down/come_up may come from timers and admin calls at once
        self._come_back: threading.Timer | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def is_up(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        """Client connections the server holds open right now."""
        server = self._server
        return len(server.server_state.connections) if server is not None else 0

    @property
    def hung_count(self) -> int:
        """Requests currently held by a hang fault (DingTalk or webhook)."""
        return self._lot.count

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._loop = _new_loop()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="platform-standin", daemon=True)
        self._thread.start()
        self.come_up()
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._stopping = True
        self.go_down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def come_up(self) -> None:
        """Listen again (on the same port once one was chosen); a no-op while up."""
        self._come_up(scheduled=False)

    def _come_up(self, *, scheduled: bool) -> None:
        with self._lifecycle:
            if scheduled and self._stopping:
                return  # stop() came first; the timer must not bring back what it stopped
            if self._loop is None:
                raise RuntimeError("not started")
            self._cancel_come_back()
            if self._server is not None:
                return
            sock = _bind(self.host, self.port)
            self.port = sock.getsockname()[1]
            self._call(self._serve(sock))

    def go_down(self, for_seconds: float | None = None) -> None:
        """Stop listening and cut every connection; with for_seconds, come back up after that long."""
        with self._lifecycle:
            self._cancel_come_back()
            if self._server is not None:
                self._call(self._shut_down())
            if for_seconds is not None and self._loop is not None:
                self._come_back = threading.Timer(for_seconds, self._come_up, kwargs={"scheduled": True})
                self._come_back.daemon = True
                self._come_back.start()

    def release_hung(self) -> None:
        """Let every held request go on (a hang answers normally, record_then_hang sends its answer)."""
        if self._loop is not None:
            self._call(self._release(ANSWER))

    def _cancel_come_back(self) -> None:
        if self._come_back is not None:
            self._come_back.cancel()
            self._come_back = None

    def _go_down_in_background(self, seconds: float) -> None:
        # Called on the event loop by the admin route, which must answer before the server goes.
        threading.Thread(target=self.go_down, args=(seconds,), daemon=True).start()

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _release(self, outcome: str) -> None:
        self._lot.release_all(outcome)

    async def _serve(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            backlog=2048,
        )
        server = uvicorn.Server(config)
        serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
                raise RuntimeError("the stand-in's server stopped while starting")
            await asyncio.sleep(0.005)
        self._server, self._serving = server, serving

    async def _shut_down(self) -> None:
        server, serving = self._server, self._serving
        assert server is not None and serving is not None
        self._server = self._serving = None
        self._lot.release_all(DROP)  # a server that goes away answers nobody
        server.should_exit = server.force_exit = True
        await serving
        for connection in list(server.server_state.connections):
            connection.transport.abort()  # uvicorn leaves a request still mid-way (body arriving) open


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--qps", type=int, default=20, help="calls per rolling second; 0 switches the limit off")
    parser.add_argument("--known-users", default="", help="comma-separated user ids; empty: every user is known")
    parser.add_argument("--app-key", default="standin-key")
    parser.add_argument("--app-secret", default="standin-secret")
    parser.add_argument("--token-ttl", type=float, default=7200)
    parser.add_argument("--tz", default="Asia/Shanghai", help="the org's time zone, for listRecord")
    parser.add_argument("--webhook-secret", default="standin-webhook-secret")
    parser.add_argument("--webhook-path", default="/webhook")
    args = parser.parse_args(argv)
    stand_in = PlatformStandIn(
        args.host,
        args.port,
        qps=args.qps or None,
        known_users=[u for u in args.known_users.split(",") if u],
        webhook_secret=args.webhook_secret,
        webhook_path=args.webhook_path,
        app_key=args.app_key,
        app_secret=args.app_secret,
        token_ttl=args.token_ttl,
        org_tz=args.tz,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stand_in.start()
    print(stand_in.url, flush=True)
    while not stopping.wait(0.2):
        pass
    stand_in.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
