"""A simulated GNSS receiver writing NMEA 0183 (RMC, VTG, GGA per epoch) to a serial line.

It follows a route (a function of seconds since the start, or waypoints driven
at a constant speed) and writes one epoch per tick, in the order u-blox
receivers use: RMC, VTG, GGA. Its clock is simulated: each tick advances it by
1/rate_hz seconds, and `run` paces ticks `speedup` times faster than real time,
so tests and the demo can compress an hour of driving into seconds. Tests can
call `tick()` directly and never sleep.

Faults a real line shows, on demand: a sentence with a wrong checksum
(`corrupt_next`), a stretch without a fix where the receiver sends status V
and empty fields (`lose_fix`), and a pulled cable (`pull_cable`/`plug_cable`:
the clock runs on, nothing is written).

The line is a file descriptor (the slave side of `os.openpty()`; the stub owns
it, puts a tty in raw mode as a UART is, and drops what the line cannot take
instead of blocking, as a UART with nobody listening does) or a pyserial port
URL.

Run alone: python -m firmware_stubs.nmea_receiver --port /dev/pts/N --rate 1 --speedup 1
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import threading
import time
import tty
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import serial

KNOT_KMH = 1.852
EARTH_RADIUS_M = 6_371_008.8

# Seconds since the start of the route -> (lat, lon) in degrees.
Route = Callable[[float], tuple[float, float]]


# --- sentences -----------------------------------------------------------------------


def nmea_checksum(body: str) -> str:
    """Two uppercase hex digits: the XOR of the characters between `$` and `*`."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return f"{value:02X}"


def frame(body: str) -> str:
    return f"${body}*{nmea_checksum(body)}\r\n"


def _ddmm(value: float, degree_digits: int, decimals: int) -> str:
    # Whole units of the last minute decimal, so rounding can never print 60 minutes.
    scale = 10**decimals
    total = round(abs(value) * 60 * scale)
    degrees, minutes = divmod(total, 60 * scale)
    return f"{degrees:0{degree_digits}d}{minutes // scale:02d}.{minutes % scale:0{decimals}d}"


def _opt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def epoch_sentences(
    when: datetime,
    lat: float,
    lon: float,
    speed_kmh: float | None = 0.0,
    course: float | None = None,
    alt: float | None = None,
    sats: int | None = None,
    hdop: float | None = None,
    *,
    talker: str = "GN",
    fix: bool = True,
    decimals: int = 5,
) -> list[str]:
    """RMC, VTG and GGA (framed, CRLF-terminated) for one epoch at UTC time `when`.

    Without a fix the receiver still knows its clock, so time and date stay and
    every other field is empty, as real receivers do.
    """
    when = when.astimezone(UTC)
    if not 2000 <= when.year <= 2099:
        raise ValueError("RMC's two-digit year covers 2000-2099 only")
    hms = when.strftime("%H%M%S") + f".{when.microsecond // 10_000:02d}"
    dmy = when.strftime("%d%m%y")
    if not fix:
        return [
            frame(f"{talker}RMC,{hms},V,,,,,,,{dmy},,,N"),
            frame(f"{talker}VTG,,T,,M,,N,,K,N"),
            frame(f"{talker}GGA,{hms},,,,,0,00,,,M,,M,,"),
        ]
    lat_text, ns = _ddmm(lat, 2, decimals), "S" if lat < 0 else "N"
    lon_text, ew = _ddmm(lon, 3, decimals), "W" if lon < 0 else "E"
    knots = None if speed_kmh is None else speed_kmh / KNOT_KMH
    position = f"{lat_text},{ns},{lon_text},{ew}"
    return [
        frame(f"{talker}RMC,{hms},A,{position},{_opt(knots, '.3f')},{_opt(course, '.2f')},{dmy},,,A"),
        frame(f"{talker}VTG,{_opt(course, '.2f')},T,,M,{_opt(knots, '.3f')},N,{_opt(speed_kmh, '.3f')},K,A"),
        frame(f"{talker}GGA,{hms},{position},1,{_opt(sats, '02d')},{_opt(hdop, '.2f')},{_opt(alt, '.2f')},M,,M,,"),
    ]


# --- routes --------------------------------------------------------------------------


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360.0


def along(waypoints: Sequence[tuple[float, float]], speed_kmh: float, loop: bool = True) -> Route:
    """Drive through the waypoints at a constant speed (straight lines between them; fine for a few km)."""
    points = list(waypoints) + ([waypoints[0]] if loop and len(waypoints) > 1 else [])
    legs = [(p, q, distance_m(p, q)) for p, q in itertools.pairwise(points)]
    total = sum(length for _, _, length in legs)
    speed_ms = speed_kmh / 3.6

    def position(seconds: float) -> tuple[float, float]:
        if total == 0 or speed_ms <= 0:
            return points[0]
        travelled = speed_ms * seconds
        travelled = travelled % total if loop else min(travelled, total)
        for start, end, length in legs:
            if travelled <= length and length > 0:
                share = travelled / length
                return start[0] + (end[0] - start[0]) * share, start[1] + (end[1] - start[1]) * share
            travelled -= length
        return points[-1]

    return position


def circle(lat: float, lon: float, radius_m: float, speed_kmh: float, points: int = 36) -> Route:
    """A loop around a centre, as waypoints: the demo's default drive."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    ring = [
        (lat + dlat * math.cos(2 * math.pi * i / points), lon + dlon * math.sin(2 * math.pi * i / points))
        for i in range(points)
    ]
    return along(ring, speed_kmh, loop=True)


# --- the receiver --------------------------------------------------------------------


class NmeaReceiver:
    def __init__(
        self,
        port: int | str,
        route: Route,
        *,
        talker: str = "GN",
        rate_hz: float = 1.0,
        start: datetime | None = None,
        speedup: float = 1.0,
        alt: float | None = 45.0,
        sats: int | None = 9,
        hdop: float | None = 0.9,
        decimals: int = 5,
        baudrate: int = 9600,
    ) -> None:
        if rate_hz <= 0 or speedup <= 0:
            raise ValueError("rate_hz and speedup must be positive")
        self.route = route
        self.talker = talker
        self.step = timedelta(seconds=1 / rate_hz)
        # Receivers report epochs on whole seconds; so does the default start.
        self.start_time = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self.clock = self.start_time  # the simulated UTC time of the next epoch
        self.speedup = speedup
        self.alt, self.sats, self.hdop, self.decimals = alt, sats, hdop, decimals
        self.epochs_written = 0
        self.dropped_bytes = 0
        self._lock = threading.Lock()
        self._corrupt = 0
        self._no_fix = 0
        self._cable = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.SerialBase | None = None
        self._fd: int | None = None
        if isinstance(port, int):
            self._fd = port
            if os.isatty(port):
                tty.setraw(port)  # no CR/LF translation or echo: bytes as a UART sends them
            os.set_blocking(port, False)
        else:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, write_timeout=1.0)

    # --- fault knobs ---

    def corrupt_next(self, count: int = 1) -> None:
        """The next `count` sentences go out with a wrong checksum."""
        with self._lock:
            self._corrupt += count

    def lose_fix(self, epochs: int) -> None:
        """The next `epochs` epochs have no fix: status V, empty fields."""
        with self._lock:
            self._no_fix += epochs

    def pull_cable(self) -> None:
        with self._lock:
            self._cable = False

    def plug_cable(self) -> None:
        with self._lock:
            self._cable = True

    # --- epochs ---

    def sentences_at(self, when: datetime, fix: bool = True) -> list[str]:
        """The epoch the route gives for `when`: speed and course from where it is one second later."""
        seconds = (when - self.start_time).total_seconds()
        here, ahead = self.route(seconds), self.route(seconds + 1.0)
        speed_kmh = distance_m(here, ahead) * 3.6
        course = bearing_deg(here, ahead) if speed_kmh >= 0.1 else None  # no heading when standing still
        return epoch_sentences(
            when,
            here[0],
            here[1],
            speed_kmh,
            course,
            self.alt,
            self.sats,
            self.hdop,
            talker=self.talker,
            fix=fix,
            decimals=self.decimals,
        )

    def tick(self) -> list[str]:
        """Write one epoch and advance the clock; returns what went on the line (nothing while unplugged)."""
        with self._lock:
            when, self.clock = self.clock, self.clock + self.step
            fix = self._no_fix == 0
            self._no_fix = max(0, self._no_fix - 1)
            if not self._cable:
                return []
            sentences = self.sentences_at(when, fix)
            for i, text in enumerate(sentences):
                if self._corrupt:
                    self._corrupt -= 1
                    good = text[-4:-2]
                    sentences[i] = text[:-4] + f"{int(good, 16) ^ 0x5A:02X}" + "\r\n"
        self._write("".join(sentences).encode("ascii"))
        self.epochs_written += 1
        return sentences

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is not None:
                written = os.write(self._fd, data)
            elif self._serial is not None:
                written = self._serial.write(data) or 0
            else:  # closed meanwhile: nothing goes out
                written = 0
        except (BlockingIOError, serial.SerialTimeoutException):
            written = 0
        except OSError:
            written = 0  # the other end is gone: a UART talks into the void
        self.dropped_bytes += len(data) - written

    # --- pacing ---

    def run(self, count: int | None = None) -> None:
        """Tick `count` times (or until stop), one simulated step every step/speedup real seconds."""
        interval = self.step.total_seconds() / self.speedup
        next_at = time.monotonic()
        done = 0
        while not self._stop.is_set() and (count is None or done < count):
            self.tick()
            done += 1
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self, count: int | None = None) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(count,), name="nmea receiver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self.stop()
        if self._serial is not None:
            self._serial.close()
        elif self._fd is not None:
            os.close(self._fd)
            self._fd = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="serial port path or pyserial URL, e.g. /dev/pts/5")
    parser.add_argument("--talker", default="GN")
    parser.add_argument("--rate", type=float, default=1.0, help="epochs per simulated second")
    parser.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--count", type=int, default=None, help="epochs to write (default: until Ctrl-C)")
    parser.add_argument("--lat", type=float, default=31.2304)
    parser.add_argument("--lon", type=float, default=121.4737)
    parser.add_argument("--radius", type=float, default=500.0, help="metres of the loop driven")
    parser.add_argument("--speed", type=float, default=40.0, help="km/h")
    parser.add_argument("--bad-every", type=int, default=0, help="corrupt one sentence every N epochs")
    parser.add_argument("--no-fix-every", type=int, default=0, help="lose the fix for 3 epochs every N epochs")
    args = parser.parse_args(argv)

    receiver = NmeaReceiver(
        args.port,
        circle(args.lat, args.lon, args.radius, args.speed),
        talker=args.talker,
        rate_hz=args.rate,
        speedup=args.speedup,
    )
    interval = 1 / (args.rate * args.speedup)
    try:
        n = 0
        while args.count is None or n < args.count:
            n += 1
            if args.bad_every and n % args.bad_every == 0:
                receiver.corrupt_next()
            if args.no_fix_every and n % args.no_fix_every == 0:
                receiver.lose_fix(3)
            for line in receiver.tick():
                print(line, end="", flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()


if __name__ == "__main__":
    main()
