"""libosdp plumbing shared by the control panel and the simulated reader.

- libosdp's C logger (stderr by default) routed into Python logging;
- a pyserial port as an `osdp.Channel` whose read/write never block and
  never raise into libosdp (they run inside its refresh, holding the GIL).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import osdp
import osdp_sys  # libosdp's C extension module (no stubs: see the mypy overrides)
import serial

liblog = logging.getLogger("gateway.transports.osdp_cp.libosdp")


# --------------------------------------------------------------------------
# libosdp's C logger -> Python logging
# --------------------------------------------------------------------------

_PUTS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)
_SETUP_LOCK = threading.Lock()
_LOG_LINE = re.compile(
    r"^(?P<name>.*?):\s+\d{4}-\d\d-\d\dT\S+\s+(?P<src>\S+:\d+)\s+\[(?P<level>[A-Z]+)\s*\]\s?(?P<msg>.*)$", re.DOTALL
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PY_LEVEL = {
    "EMERG": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRIT": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}
_KEEP_ALIVE: list[Any] = []  # C keeps pointers to these callbacks for the life of the process


def _logger_init() -> Any:
    """libosdp's exported `osdp_logger_init(name, level, puts_fn)`, or None if this build lacks it."""
    try:
        fn = ctypes.CDLL(osdp_sys.__file__).osdp_logger_init
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int, _PUTS_FN]
    fn.restype = None
    return fn


_OSDP_LOGGER_INIT = _logger_init()


def default_osdp_log_level(logger: logging.Logger) -> int:
    return osdp.LogLevel.Debug if logger.isEnabledFor(logging.DEBUG) else osdp.LogLevel.Info


class LibosdpLog:
    """Routes the log lines of the libosdp contexts created through `create()` to `sink`.

    libosdp copies its process-wide default logger into each context at setup,
    and the Python wrapper resets that default (to stderr) in every
    constructor. So the constructor runs with the wrapper's `set_loglevel`
    swapped for one that installs this object's callback, under a lock; the
    default is then pointed at a permanent fallback so no later context
    inherits this one. Without the exported symbol, only the level applies
    and libosdp keeps writing to stderr.
    """

    def __init__(self, sink: Callable[[str, int, str], None], tag: str = "osdp") -> None:
        self.sink = sink  # (context name, Python level, message)
        self.tag = tag.encode()
        self._cfunc = _PUTS_FN(self._puts)
        _KEEP_ALIVE.append(self)

    def _puts(self, raw: bytes | None) -> int:
        try:
            text = _ANSI.sub("", (raw or b"").decode("utf-8", "replace")).rstrip()
            if text:
                m = _LOG_LINE.match(text)
                if m:
                    self.sink(m["name"], _PY_LEVEL.get(m["level"], logging.INFO), m["msg"])
                else:
                    self.sink("", logging.INFO, text)
        except Exception:
            pass
        return 0

    def create(self, factory: Callable[[], Any], level: int) -> Any:
        if _OSDP_LOGGER_INIT is None:
            return factory()
        with _SETUP_LOCK:
            original = osdp_sys.set_loglevel
            osdp_sys.set_loglevel = lambda lvl: _OSDP_LOGGER_INIT(self.tag, int(lvl), self._cfunc)
            try:
                return factory()
            finally:
                osdp_sys.set_loglevel = original
                _OSDP_LOGGER_INIT(b"osdp", int(level), _FALLBACK._cfunc)


def _fallback_sink(name: str, level: int, msg: str) -> None:
    liblog.log(level, "%s: %s", name, msg)


_FALLBACK = LibosdpLog(_fallback_sink)


# --------------------------------------------------------------------------
# The serial channel
# --------------------------------------------------------------------------


class SerialChannel(osdp.Channel):
    """A pyserial port as an osdp.Channel: never blocks, never raises into libosdp.

    read() takes what the port says is waiting (no select, no byte-by-byte);
    write() is non-blocking (write_timeout=0). A port error is remembered in
    `error` for the refresh thread, which closes and reopens the line.
    """

    def __init__(self, port: serial.SerialBase, channel_id: int = 1) -> None:
        super().__init__()
        self.id = channel_id  # non-zero: PDs sharing this id share a multidrop bus
        self.port = port
        self.error: BaseException | None = None
        self.tx_packets = 0
        self.tx_bytes = 0
        self.rx_bytes = 0

    def read(self, max_bytes: int) -> bytes:
        if self.error is not None:
            return b""
        try:
            waiting = self.port.in_waiting
            if not waiting:
                return b""
            data = self.port.read(min(waiting, max_bytes))
        except Exception as exc:
            self.error = exc
            return b""
        self.rx_bytes += len(data)
        return data

    def write(self, buf: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            n = self.port.write(buf)
        except serial.SerialTimeoutException:
            return 0
        except Exception as exc:
            self.error = exc
            return 0
        n = len(buf) if n is None else n
        self.tx_packets += 1
        self.tx_bytes += n
        return n

    def flush(self) -> None:
        # libosdp calls this to drop stale receive bytes; tcflush does not block
        # (pyserial's own flush() is tcdrain, which would).
        if self.error is not None:
            return
        try:
            self.port.reset_input_buffer()
        except Exception as exc:
            self.error = exc
