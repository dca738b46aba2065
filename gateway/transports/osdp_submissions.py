"""Door commands on their way to one OSDP reader: executed promptly or not at all.

A `Submission` is one grant, deny or batch of raw commands and the Future its
caller waits on. `PendingCommands` holds a reader's commands that libosdp has
queued but the reader has not acknowledged yet; it matches libosdp's
completion reports back to their submissions, and flushes what is overdue so
a strike never fires minutes late.

Only the line's refresh thread touches a `PendingCommands` (it drives libosdp).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future

import osdp

# The line's own logger name: its logs are configured and read under one name.
log = logging.getLogger("gateway.transports.osdp_cp")


class Submission:
    """One submission (grant, deny, raw commands) and its Future."""

    def __init__(self, address: int, commands: list[tuple[dict, bool]], what: str) -> None:
        self.address = address
        self.commands = commands  # (command dict, required for success)
        self.what = what
        self.created = time.monotonic()
        self.future: Future[bool] = Future()
        self.required_left = sum(1 for _, required in commands if required)
        self.failed_optional: list[str] = []

    @property
    def done(self) -> bool:
        return self.future.done()

    def resolve(self, ok: bool, why: str = "") -> None:
        if self.future.done():
            return
        if not ok:
            log.warning("OSDP %s for reader %d failed: %s", self.what, self.address, why)
        self.future.set_result(ok)


class PendingCommands:
    """A reader's commands handed to libosdp and not acknowledged yet, with the reader's tally."""

    def __init__(self) -> None:
        self._queue: deque[tuple[object, Submission, bool]] = deque()  # (command id, submission, required)
        self.ok = 0
        self.failed = 0

    def __bool__(self) -> bool:
        return bool(self._queue)

    def send(self, cp: osdp.ControlPanel, address: int, submission: Submission, track_completion: bool) -> None:
        """Queue a submission's commands in libosdp. Without completion reports (older libosdp),
        a command libosdp accepted counts as done."""
        for cmd, required in submission.commands:
            if cp.submit_command(address, cmd):
                if track_completion:
                    self._queue.append((cmd.get("command"), submission, required))
                elif required:
                    submission.required_left -= 1
            elif required:
                self.failed += 1
                submission.resolve(False, "libosdp refused the command")
                return
            else:
                submission.failed_optional.append(str(cmd.get("command")))
        if submission.required_left <= 0:
            submission.resolve(True)

    def complete(self, address: int, command: dict, status: int) -> None:
        """libosdp's completion report for one of this reader's commands."""
        cmd_id = command.get("command") if isinstance(command, dict) else None
        for i, (pending_id, submission, required) in enumerate(self._queue):  # noqa: B007 (used after the break)
            if pending_id == cmd_id:
                del self._queue[i]
                break
        else:
            return  # one of libosdp's own (KEYSET during install)
        ok = status == osdp.CompletionStatus.Ok
        if required:
            if ok:
                self.ok += 1
                submission.required_left -= 1
                if submission.required_left <= 0:
                    submission.resolve(True)
            else:
                self.failed += 1
                submission.resolve(False, f"reader answered with completion status {status}")
        elif not ok:
            log.warning("OSDP reader %d: feedback command %s not acknowledged (%s)", address, cmd_id, status)

    def overdue(self, now: float, timeout: float) -> bool:
        return bool(self._queue) and now - self._queue[0][1].created > timeout

    def flush(self, cp: osdp.ControlPanel, address: int, why: str) -> None:
        """Drop every queued command of the reader, in libosdp too: a strike must not fire late."""
        if self._queue:
            cp.flush_commands(address)
        while self._queue:
            _, submission, required = self._queue.popleft()
            if required:
                self.failed += 1
            submission.resolve(False, why)

    def drop(self, why: str) -> None:
        """Fail every queued command once libosdp's context is gone with the line."""
        while self._queue:
            _, submission, _ = self._queue.popleft()
            submission.resolve(False, why)
