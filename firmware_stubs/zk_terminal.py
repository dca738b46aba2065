"""A simulated ZKTeco attendance terminal speaking ADMS ("iclock" push) over real HTTP.

Like a real one it does the handshake (`GET /iclock/cdata?options=all`), pushes
its punches as ATTLOG batches (TAB separated lines in its own local time) and
keeps a batch until the server answers `OK`, resending it otherwise, so
nothing is lost while the gateway restarts. It polls `/iclock/getrequest`,
executes the commands it gets (user sync and delete on its own user table,
INFO, CHECK, REBOOT; anything else is answered Return=-1) and reports each on
`/iclock/devicecmd`.

Run alone: python -m firmware_stubs.zk_terminal --url http://127.0.0.1:8080 --sn CKJA0001 --count 100
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import httpx

from gateway.devices import zk_adms
from gateway.devices.attlog import encode_line

# (status, verify) a terminal records: check-in/out by fingerprint, card, face, password.
STATUSES = (0, 1)
VERIFIES = (1, 2, 15, 0)


class PushFailed(RuntimeError):
    """The server did not answer OK within the attempts allowed."""


class ZkTerminal:
    def __init__(
        self,
        url: str,
        sn: str,
        *,
        tz: tzinfo = ZoneInfo("Asia/Shanghai"),
        pins: list[str] | None = None,
        pushver: str | None = "2.4.1",
        start: datetime | None = None,
        retry_delay: float = 0.2,
        max_attempts: int = 50,
        lose_replies: int = 0,
        answer_commands: bool = True,
        timeout: float = 40.0,
        comm_key: str | None = None,
        local_address: str | None = None,
    ) -> None:
        self.sn = sn
        self.comm_key = comm_key  # sent as pushcommkey on the handshake, as firmware set with one does
        self.tz = tz
        self.pins = pins or [str(1000 + i) for i in range(50)]
        self.pushver = pushver  # None: old firmware (no pushver on the handshake)
        self.clock = start or datetime.now(UTC) - timedelta(hours=1)
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.lose_replies = lose_replies  # the next N OK answers are "lost": the batch is sent again
        self.answer_commands = answer_commands
        # local_address: the source address to send from (a terminal is bound to the address it first used)
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport)
        self.options: dict[str, str] = {}
        self.pending: list[str] = []  # punch lines the server has not acknowledged
        self.stamp = itertools.count(1)
        self.posts = 0  # data posts sent, resends included
        self.accepted: list[int] = []  # n of each OK:<n> that ended a batch
        self.users: dict[str, dict[str, str]] = {}  # the terminal's user table: PIN -> fields
        self.commands: list[tuple[str, str]] = []  # every (id, command) received
        self.results: list[tuple[str, int, str]] = []  # every (id, Return, CMD) answered
        self.reboots = 0

    # -- handshake ------------------------------------------------------------------------------

    def handshake(self) -> dict[str, str]:
        params = {"SN": self.sn, "options": "all"}
        if self.pushver is not None:
            params["pushver"] = self.pushver
        if self.comm_key is not None:
            params["pushcommkey"] = self.comm_key
        response = self.http.get("/iclock/cdata", params=params)
        response.raise_for_status()
        self.options = zk_adms.parse_options(response.text)
        return self.options

    # -- punches -------------------------------------------------------------------------------------

    def punch_line(
        self,
        pin: str | None = None,
        local: datetime | None = None,
        status: int | None = None,
        verify: int | None = None,
        fields: int = 6,
    ) -> str:
        """One ATTLOG line in this terminal's local time; 6 fields (older firmware) or 10 (newer)."""
        if local is None:
            self.clock += timedelta(seconds=random.randint(1, 30))
            local = self.clock.astimezone(self.tz).replace(tzinfo=None)
        line = encode_line(
            pin if pin is not None else random.choice(self.pins),
            local,
            random.choice(STATUSES) if status is None else status,
            random.choice(VERIFIES) if verify is None else verify,
        )
        return line + "\t0" * (fields - 6) if fields > 6 else line

    def punch(self, count: int = 1, **kw: object) -> list[str]:
        """Record punches; they go out with the next push()."""
        lines = [self.punch_line(**kw) for _ in range(count)]  # type: ignore[arg-type]
        self.pending += lines
        return lines

    def push(self, lines: list[str] | None = None, table: str = "ATTLOG") -> int:
        """Send a batch (default: every pending punch) until the server answers OK; returns its n.

        A non-OK answer, an error status or a network error: wait and send the
        same batch again, as terminals do.
        """
        batch = list(self.pending) if lines is None else list(lines)
        if not batch:
            return 0
        body = ("\n".join(batch) + "\n").encode()
        params = {"SN": self.sn, "table": table, "Stamp": str(next(self.stamp))}
        for _ in range(self.max_attempts):
            self.posts += 1
            try:
                response = self.http.post(
                    "/iclock/cdata", params=params, content=body, headers={"Content-Type": "text/plain"}
                )
            except httpx.TransportError:
                time.sleep(self.retry_delay)
                continue
            text = response.text.strip()
            if response.status_code == 200 and text.startswith("OK"):
                if self.lose_replies > 0:  # the answer never reached us: same batch again
                    self.lose_replies -= 1
                    continue
                n = int(text[3:]) if text[3:].isdigit() else len(batch)
                if lines is None:
                    self.pending = self.pending[len(batch) :]
                self.accepted.append(n)
                return n
            time.sleep(self.retry_delay)
        raise PushFailed(f"{self.sn}: no OK after {self.max_attempts} attempts")

    def push_users(self) -> int:
        """Upload the user table as OPERLOG USER lines (what a terminal does after enrolment)."""
        lines = [zk_adms.user_line(fields) for fields in self.users.values()]
        return self.push(lines, table="OPERLOG") if lines else 0

    # -- commands -------------------------------------------------------------------------------------

    def poll(self) -> list[tuple[str, str]]:
        """One heartbeat: fetch queued commands, execute them, report the results."""
        response = self.http.get("/iclock/getrequest", params={"SN": self.sn})
        response.raise_for_status()
        commands = zk_adms.parse_getrequest(response.text)
        self.commands += commands
        if commands and self.answer_commands:
            replies, extra = [], []
            for cid, text in commands:
                code, info = self.execute(text)
                replies.append((cid, code, text.split(" ", 1)[0]))
                extra.append(info)
            body = "".join(
                zk_adms.devicecmd_body([reply]) + (info + "\n" if info else "") for reply, info in zip(replies, extra)
            )
            self.http.post("/iclock/devicecmd", params={"SN": self.sn}, content=body.encode()).raise_for_status()
            self.results += replies
        return commands

    def execute(self, text: str) -> tuple[int, str]:
        """(Return code, extra lines) of one command, applied to this terminal."""
        verb, fields = zk_adms.parse_command(text)
        if verb == "DATA UPDATE USERINFO" and fields.get("PIN"):
            self.users[fields["PIN"]] = {**self.users.get(fields["PIN"], {}), **fields}
            return 0, ""
        if verb == "DATA DELETE USERINFO" and fields.get("PIN"):
            self.users.pop(fields["PIN"], None)
            return 0, ""
        if verb == "INFO":
            return 0, f"~DeviceName=SimZK\nFWVersion=sim-1.0\nUserCount={len(self.users)}\nSerialNumber={self.sn}"
        if verb == "CHECK":
            return 0, ""
        if verb == "REBOOT":
            self.reboots += 1
            return 0, ""
        return -1, ""

    # -- standalone ---------------------------------------------------------------------------------

    def run(self, count: int, batch: int = 50, polls: int = 1) -> int:
        """Handshake, push `count` punches in batches, poll for commands; returns lines accepted."""
        self.handshake()
        total = 0
        remaining = count
        while remaining > 0:
            n = min(batch, remaining)
            self.punch(n)
            total += self.push()
            remaining -= n
        for _ in range(polls):
            self.poll()
        return total

    def close(self) -> None:
        self.http.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's API listener")
    parser.add_argument("--sn", required=True, help="serial number, as registered (config.sn)")
    parser.add_argument("--count", type=int, default=100, help="punches to push")
    parser.add_argument("--batch", type=int, default=50, help="punches per post")
    parser.add_argument("--tz", default="Asia/Shanghai", help="the terminal's own time zone")
    parser.add_argument("--old-firmware", action="store_true", help="handshake without pushver")
    parser.add_argument("--polls", type=int, default=1, help="getrequest polls after the punches")
    args = parser.parse_args(argv)
    terminal = ZkTerminal(args.url, args.sn, tz=ZoneInfo(args.tz), pushver=None if args.old_firmware else "2.4.1")
    try:
        accepted = terminal.run(args.count, args.batch, args.polls)
    except (PushFailed, httpx.HTTPError) as exc:
        print(f"failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        terminal.close()
    print(
        f"pushed {args.count} accepted {accepted} posts {terminal.posts} commands {len(terminal.commands)}", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
