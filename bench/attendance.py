"""Throughput of the attendance engine (gateway.attendance.compute_days) over one month.

Usage:  PYTHONPATH=. python bench/attendance.py [--people 1000 2000 5000] [--repeat 3]

For each size: N people x 22 working days (June 2026, Asia/Shanghai) x 4 punches (in, out
for lunch, in, out). About 10% of people work a 22:00-06:00 night shift; some arrive late,
some forget a punch, a few are absent or on leave, and terminals re-send ~1% of punches
(duplicates). Inputs are generated once per size (not timed, fixed seed); the timed part is
one compute_days call over the whole month, best of --repeat. Pure CPU, no I/O.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gateway.attendance import Leave, Punch, Schedule, Shift, compute_days

TZ = ZoneInfo("Asia/Shanghai")
FIRST, LAST = date(2026, 6, 1), date(2026, 6, 30)  # 22 weekdays, no DST in Shanghai
DEVICES = [f"term-{k:02d}" for k in range(20)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SHIFTS = {
    "day": Shift("day", "Day 09-18", wall(9), wall(18), hours_mode="pairs", pairing="device"),
    "office": Shift("office", "Office 08:30-17:30", wall(8, 30), wall(17, 30)),
    "night": Shift("night", "Night 22-06", wall(22), wall(6)),
}
# Local minutes after the shift day's midnight: in, lunch out, back in, out.
PLAN = {
    "day": (9 * 60, 12 * 60, 13 * 60, 18 * 60),
    "office": (510, 720, 780, 1050),
    "night": (22 * 60, 26 * 60, 26 * 60 + 30, 30 * 60),
}


def local_ms(day: date, minutes: float) -> int:
    dt = datetime.combine(day, wall(), tzinfo=TZ) + timedelta(minutes=minutes)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def make_month(people: int, seed: int = 7):
    rng = random.Random(seed)
    workdays = [FIRST + timedelta(days=k) for k in range((LAST - FIRST).days + 1)]
    workdays = [d for d in workdays if d.weekday() < 5]
    assignment, leaves, punches = {}, [], []
    for n in range(people):
        pid = f"E{n:05d}"
        r = rng.random()
        sid = "night" if r < 0.10 else "day" if r < 0.55 else "office"
        assignment[pid] = sid
        device = rng.choice(DEVICES)
        for day in workdays:
            roll = rng.random()
            if roll < 0.01:
                leaves.append(Leave(pid, day))
                continue
            if roll < 0.02:
                continue  # absent
            times = [m + rng.uniform(-8, 3) for m in PLAN[sid]]
            if rng.random() < 0.08:
                times[0] += rng.uniform(6, 40)  # late
            if rng.random() < 0.03:
                del times[rng.randrange(4)]  # a forgotten punch
            for k, m in enumerate(times):
                t = local_ms(day, m) + rng.randrange(1000)
                direction = "in" if k % 2 == 0 else "out"
                punches.append(Punch(f"{pid}-{day:%d}-{k}", pid, t, direction, device))
                if rng.random() < 0.01:  # the terminal re-sent it
                    punches.append(Punch(f"{pid}-{day:%d}-{k}r", pid, t, direction, device))
    rng.shuffle(punches)  # arrival order from many terminals is not time order
    schedule = Schedule(shifts=SHIFTS, assignment=assignment, tz=TZ, leaves=leaves)
    marks = {d: local_ms(LAST + timedelta(days=1), 12 * 60) for d in DEVICES}
    return punches, schedule, marks, len(workdays)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rows = []
    for n in args.people:
        punches, schedule, marks, ndays = make_month(n)
        best, recs = float("inf"), []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            recs = compute_days(punches, schedule, FIRST, LAST, marks, DEVICES)
            best = min(best, time.perf_counter() - t0)
        assert len(recs) == n * ndays, (len(recs), n * ndays)
        rows.append((n, len(punches), len(recs), best))

    print(f"compute_days over {FIRST}..{LAST} (Asia/Shanghai), best of {args.repeat}, Python {sys.version.split()[0]}")
    print(f"{'people':>7} {'punches':>9} {'records':>8} {'seconds':>8} {'punches/s':>11} {'vs first':>9}")
    base = rows[0][3]
    for n, np_, nr, s in rows:
        print(f"{n:>7} {np_:>9} {nr:>8} {s:>8.3f} {np_ / s:>11,.0f} {s / base:>8.2f}x")
    (n0, _, r0, s0), (n1, _, _, s1) = rows[0], rows[-1]
    if len(rows) > 1:
        print(f"growth {n0:,} -> {n1:,} people: {s1 / s0:.2f}x (linear = {n1 / n0:.1f})")
    print(f"baseline: {n0:,} people take {s0:.3f} s ({r0:,} person-days); goal: 5,000 people < 5 s")


if __name__ == "__main__":
    main()
