"""A null-modem cable in software: two pseudo-terminals whose traffic is copied both ways.

What socat's `pty,link=... pty,link=...` does, without socat, so the demo runs
on a machine that has only Python. Each end has a path (`/dev/pts/N`) that
pyserial opens like a USB adapter. `unplug()` stops the copying (the cable is
pulled); `plug()` resumes it.
"""

from __future__ import annotations

import os
import select
import threading
import tty


class PtyLink:
    def __init__(self) -> None:
        self._masters: list[int] = []
        self.paths: list[str] = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
            self._masters.append(master)
            self.paths.append(os.ttyname(slave))
            self._slaves = getattr(self, "_slaves", []) + [slave]  # kept open so the master never sees EOF
        self.connected = threading.Event()
        self.connected.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="pty-link", daemon=True)

    @property
    def gateway_end(self) -> str:
        return self.paths[0]

    @property
    def device_end(self) -> str:
        return self.paths[1]

    def start(self) -> PtyLink:
        self._thread.start()
        return self

    def unplug(self) -> None:
        self.connected.clear()

    def plug(self) -> None:
        self.connected.set()

    def _copy(self) -> None:
        a, b = self._masters
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data and self.connected.is_set():  # unplugged: what is sent is lost, as on a cut cable
                    os.write(peer[fd], data)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        for fd in self._masters + self._slaves:
            try:
                os.close(fd)
            except OSError:
                pass
