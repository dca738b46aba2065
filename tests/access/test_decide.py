from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.access.decide import (
    ALL,
    AccessData,
    Credential,
    Decision,
    Holder,
    build,
    card_key,
    decide,
    find_holder,
)
from gateway.access.schedules import Schedule
from gateway.devices.wiegand import decode, encode

SHANGHAI = ZoneInfo("Asia/Shanghai")
MON, TUE, FRI, SAT, SUN = 0, 1, 4, 5, 6


def local_ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz=SHANGHAI) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=tz).timestamp() * 1000)


def utc_ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return local_ms(y, mo, d, h, mi, tz=UTC)


# 2026-11-23 is a Monday; 2026-11-27 a Friday.
NOW = local_ms(2026, 11, 24, 10, 0)  # Tuesday 10:00 in Shanghai


def card(facility: int | None, number: int) -> Credential:
    return Credential("card", f"{facility}:{number}", facility, number)


def data_for(people=(), visitors=(), schedules=(), holidays=(), anti_passback=()) -> AccessData:
    data = build(people, visitors, schedules, holidays, "Asia/Shanghai", anti_passback)
    assert data.problems == ()
    return data


def person(pid: str, cards: list[str], doors=("*",), schedule="always", **extra) -> dict:
    return {"id": pid, "cards": cards, "access": {"doors": list(doors), "schedule": schedule}, **extra}


BASIC = data_for(
    people=[
        person("E1", ["10:1093"], doors=["main", "lab"]),
        person("E2", ["2000"]),
        {"id": "E3", "cards": ["10:3000"]},  # no access at all
        person("E4", ["10:4000"], revoked=True),
    ],
    visitors=[
        {
            "id": "V1",
            "credential": {"kind": "qr", "value": "inv-abc"},
            "doors": ["main"],
            "valid_from": "2026-11-24T09:00:00+08:00",
            "valid_until": "2026-11-24T18:00:00+08:00",
            "revoked": False,
        },
        {"id": "V2", "credential": {"kind": "pin", "value": "4711"}, "doors": ["main"], "revoked": True},
    ],
)


def test_granted():
    assert decide(card(10, 1093), "main", NOW, BASIC) == Decision("granted", "granted", "E1", None)
    assert decide(card(99, 2000), "anything", NOW, BASIC).granted  # "*" and a number-only card


def test_granted_for_a_decoded_wiegand_card():
    data, bits = encode("H10301", 10, 1093)
    credential = Credential.from_card(decode(data, bits))
    assert credential == Credential("card", "0x14088B", 10, 1093)
    assert decide(credential, "lab", NOW, BASIC).reason == "granted"


def test_bad_parity():
    # A bad read is refused before anything is looked up, even when the number matches.
    bad = Credential("card", "0x14088A", 10, 1093, parity_ok=False)
    assert decide(bad, "main", NOW, BASIC) == Decision("denied", "bad_parity", None, None)


def test_unknown_credential():
    assert decide(card(11, 1093), "main", NOW, BASIC) == Decision("denied", "unknown_credential")
    assert decide(Credential("pin", "0000"), "main", NOW, BASIC).reason == "unknown_credential"
    assert decide(Credential("qr", "nope"), "main", NOW, BASIC).reason == "unknown_credential"
    assert decide(Credential("face", "x"), "main", NOW, BASIC).reason == "unknown_credential"


def test_revoked():
    assert decide(card(10, 4000), "main", NOW, BASIC) == Decision("denied", "revoked", "E4", None)
    assert decide(Credential("pin", "4711"), "main", NOW, BASIC) == Decision("denied", "revoked", None, "V2")


def test_not_yet_valid():
    early = local_ms(2026, 11, 24, 8, 59)
    assert decide(Credential("qr", "inv-abc"), "main", early, BASIC) == Decision("denied", "not_yet_valid", None, "V1")
    assert decide(Credential("qr", "inv-abc"), "main", local_ms(2026, 11, 24, 9, 0), BASIC).granted  # from is inclusive


def test_expired():
    assert decide(Credential("qr", "inv-abc"), "main", local_ms(2026, 11, 24, 17, 59), BASIC).granted
    end = local_ms(2026, 11, 24, 18, 0)  # until is exclusive
    assert decide(Credential("qr", "inv-abc"), "main", end, BASIC) == Decision("denied", "expired", None, "V1")


def test_door_not_allowed():
    assert decide(card(10, 1093), "server-room", NOW, BASIC) == Decision("denied", "door_not_allowed", "E1", None)
    assert decide(Credential("qr", "inv-abc"), "lab", NOW, BASIC).reason == "door_not_allowed"


def test_person_without_access_is_denied_everywhere():
    for door in ("main", "lab", "*", ""):
        assert decide(card(10, 3000), door, NOW, BASIC) == Decision("denied", "door_not_allowed", "E3", None)
    empty = data_for(people=[{"id": "E5", "cards": ["5"], "access": {"doors": []}}])
    assert decide(card(None, 5), "main", NOW, empty).reason == "door_not_allowed"


def test_reasons_in_order():
    # A holder failing every check; clearing one at a time reveals the next reason.
    h = Holder(
        person_id="P", doors=frozenset({"lab"}), schedule_id="never", valid_from=NOW + 1, valid_until=NOW, revoked=True
    )
    never = {"never": Schedule("never", {})}
    apb = frozenset({("main", "exit")})

    def reason(holder: Holder, parity_ok: bool = True) -> str:
        data = AccessData(cards={"1": holder}, schedules=never, anti_passback=apb)
        credential = Credential("card", "1", None, 1, parity_ok)
        return decide(credential, "main", NOW, data, last_direction="in", door_direction="in").reason

    assert reason(h, parity_ok=False) == "bad_parity"
    expected = [
        ("revoked", {"revoked": False}),
        ("not_yet_valid", {"valid_from": None}),
        ("expired", {"valid_until": None}),
        ("door_not_allowed", {"doors": ALL}),
        ("outside_schedule", {"schedule_id": "always"}),
        ("anti_passback", {}),
    ]
    for want, fix in expected:
        assert reason(h) == want
        h = replace(h, **fix)


def test_card_matches_facility_and_number_before_number_only():
    data = data_for(people=[person("A", ["10:1093"]), person("B", ["1093"])])
    assert find_holder(card(10, 1093), data).person_id == "A"
    assert decide(card(10, 1093), "main", NOW, data).person_id == "A"
    assert decide(card(11, 1093), "main", NOW, data).person_id == "B"  # any facility
    assert decide(card(None, 1093), "main", NOW, data).person_id == "B"  # a format without facility
    assert decide(card(10, 1094), "main", NOW, data).reason == "unknown_credential"


def test_card_strings_are_normalised():
    assert card_key(" 010:01093 ") == "10:1093"
    assert card_key("001093") == "1093"
    assert card_key("0x14088B") == "0x14088B"
    data = data_for(people=[person("A", ["010:01093"]), person("B", ["0x14088B"])])
    assert decide(card(10, 1093), "main", NOW, data).person_id == "A"
    # A credential with no decoded number is looked up by its value.
    assert decide(Credential("card", "0x14088B"), "main", NOW, data).person_id == "B"


OFFICE = {
    "id": "office",
    # Monday starts at local midnight: 00:00-02:00 Shanghai is still Sunday in UTC.
    "windows": {"mon": [["00:00", "02:00"], ["08:00", "18:00"]], FRI: [[22 * 60, 6 * 60]]},  # Fri 22:00 -> Sat 06:00
    "holidays_closed": True,
}


def scheduled(holidays=(), holidays_closed=True) -> AccessData:
    return data_for(
        people=[person("S", ["7"], schedule="office"), person("A", ["8"])],
        schedules=[{**OFFICE, "holidays_closed": holidays_closed}],
        holidays=holidays,
    )


def test_schedule_uses_the_local_weekday_across_the_day_boundary():
    data = scheduled()
    sunday_utc = utc_ms(2026, 11, 22, 17, 0)  # Sunday 17:00 UTC = Monday 01:00 in Shanghai
    assert datetime.fromtimestamp(sunday_utc / 1000, UTC).weekday() == SUN
    assert decide(card(None, 7), "main", sunday_utc, data).reason == "granted"
    # Sunday 23:59 local is Sunday in both zones and outside every window.
    assert decide(card(None, 7), "main", local_ms(2026, 11, 22, 23, 59), data).reason == "outside_schedule"
    # Monday 02:00 local ends the early window (end exclusive); 08:00 opens the day.
    assert decide(card(None, 7), "main", local_ms(2026, 11, 23, 2, 0), data).reason == "outside_schedule"
    assert decide(card(None, 7), "main", local_ms(2026, 11, 23, 8, 0), data).reason == "granted"
    assert decide(card(None, 7), "main", local_ms(2026, 11, 23, 17, 59), data).reason == "granted"
    assert decide(card(None, 7), "main", local_ms(2026, 11, 23, 18, 0), data).reason == "outside_schedule"
    # Monday 07:30 UTC is 15:30 local: inside, though a UTC clock reads 07:30.
    assert decide(card(None, 7), "main", utc_ms(2026, 11, 23, 7, 30), data).reason == "granted"
    # Monday 20:00 UTC is Tuesday 04:00 local: outside, though Monday in UTC.
    assert decide(card(None, 7), "main", utc_ms(2026, 11, 23, 20, 0), data).reason == "outside_schedule"


def test_overnight_window_runs_into_the_next_weekday():
    data = scheduled()
    assert decide(card(None, 7), "main", local_ms(2026, 11, 27, 21, 59), data).reason == "outside_schedule"
    assert decide(card(None, 7), "main", local_ms(2026, 11, 27, 22, 0), data).granted
    assert decide(card(None, 7), "main", local_ms(2026, 11, 28, 5, 59), data).granted  # Saturday morning
    assert decide(card(None, 7), "main", local_ms(2026, 11, 28, 6, 0), data).reason == "outside_schedule"


def test_holiday_closed():
    monday_9 = local_ms(2026, 11, 23, 9, 0)
    assert decide(card(None, 7), "main", monday_9, scheduled()).granted
    holiday = scheduled(holidays=["2026-11-23"])
    assert decide(card(None, 7), "main", monday_9, holiday) == Decision("denied", "outside_schedule", "S", None)
    # The holiday is the local date: Sunday 17:00 UTC is already Monday the 23rd in Shanghai.
    assert decide(card(None, 7), "main", utc_ms(2026, 11, 22, 17, 0), holiday).reason == "outside_schedule"
    # "always" knows no holidays, and a schedule may stay open on them.
    assert decide(card(None, 8), "main", monday_9, holiday).granted
    assert decide(card(None, 7), "main", monday_9, scheduled([date(2026, 11, 23)], holidays_closed=False)).granted


def test_missing_schedule_fails_closed():
    data = data_for(people=[person("S", ["7"], schedule="gone")])
    assert decide(card(None, 7), "main", NOW, data).reason == "outside_schedule"


class Doors:
    """The caller's side of anti-passback: the last direction per holder, moved on grants."""

    def __init__(self, data: AccessData) -> None:
        self.data = data
        self.last: dict[str, str] = {}

    def swipe(self, credential: Credential, door: str, direction: str) -> str:
        holder = find_holder(credential, self.data)
        key = holder.key if holder else None
        decision = decide(credential, door, NOW, self.data, self.last.get(key), direction)
        if decision.granted and door in {d for pair in self.data.anti_passback for d in pair}:
            self.last[key] = direction
        return decision.reason


APB = data_for(people=[person("E1", ["10:1093"])], anti_passback=[("main-in", "main-out")])


def test_anti_passback_in_then_in_denied():
    doors = Doors(APB)
    assert doors.swipe(card(10, 1093), "main-in", "in") == "granted"
    assert doors.swipe(card(10, 1093), "main-in", "in") == "anti_passback"
    d = decide(card(10, 1093), "main-in", NOW, APB, last_direction="in", door_direction="in")
    assert d == Decision("denied", "anti_passback", "E1", None)


def test_anti_passback_in_out_in_granted():
    doors = Doors(APB)
    assert doors.swipe(card(10, 1093), "main-in", "in") == "granted"
    assert doors.swipe(card(10, 1093), "main-out", "out") == "granted"
    assert doors.swipe(card(10, 1093), "main-in", "in") == "granted"
    assert doors.swipe(card(10, 1093), "main-out", "out") == "granted"
    assert doors.swipe(card(10, 1093), "main-out", "out") == "anti_passback"  # out twice too


def test_anti_passback_only_on_paired_doors():
    assert decide(card(10, 1093), "side", NOW, APB, last_direction="in", door_direction="in").granted
    assert decide(card(10, 1093), "main-in", NOW, APB, last_direction=None, door_direction="in").granted


def test_build_reads_visitor_credentials_and_times():
    data = data_for(
        visitors=[
            {
                "id": "V1",
                "credential": {"kind": "card", "value": "010:1093"},
                "doors": ["*"],
                "valid_from": 1795741143000,
                "valid_until": "2026-11-28T00:00:00Z",
                "revoked": False,
            },
            {
                "id": "V2",
                "credential": {"kind": "pin", "value": "1234"},
                "doors": "main",
                "valid_from": "2026-11-27T09:00:00",
                "valid_until": None,
            },
        ]
    )
    v1 = data.holders["visitor:V1"]
    assert (v1.doors, v1.valid_from, v1.valid_until) == (ALL, 1795741143000, utc_ms(2026, 11, 28))
    assert data.cards["10:1093"] is v1
    v2 = data.pins["1234"]
    assert v2.doors == frozenset({"main"})
    assert v2.valid_from == local_ms(2026, 11, 27, 9, 0)  # no offset: site local time
    assert decide(Credential("pin", "1234"), "main", local_ms(2026, 11, 27, 9, 0), data).granted


def test_build_leaves_out_bad_rows_and_shared_credentials():
    data = build(
        people=[
            person("A", ["10:1"]),
            person("B", ["10:1", "2"]),  # "10:1" also A's: nobody gets it
            person("C", ["2"]),  # "2" also B's
            person("A2", ["3", "3"]),  # the same holder twice is no clash
            {"cards": ["4"]},  # no id
            person("D", ["5"], valid_from="yesterday"),
        ],
        visitors=[{"id": "V", "credential": {"kind": "iris", "value": "x"}}],
        schedules=[{"id": "broken", "windows": {"mon": [["25:00", "26:00"]]}}],
        tz=SHANGHAI,
    )
    assert decide(card(10, 1), "main", NOW, data).reason == "unknown_credential"
    assert decide(card(None, 2), "main", NOW, data).reason == "unknown_credential"
    assert decide(card(None, 3), "main", NOW, data).person_id == "A2"
    assert decide(card(None, 5), "main", NOW, data).reason == "unknown_credential"
    assert "broken" not in data.schedules
    assert len(data.problems) == 6
    assert set(data.holders) == {"person:A", "person:B", "person:C", "person:A2"}


def test_holder_and_schedule_validation():
    with pytest.raises(ValueError):
        Holder(person_id="P", visitor_id="V")
    with pytest.raises(ValueError):
        Holder()
    with pytest.raises(ValueError):
        Holder(person_id="P", doors="main")  # a bare door string is not a set of doors
    assert Holder(person_id="P", doors=["a", "b"]).doors == frozenset({"a", "b"})
    for windows in ({7: ((0, 60),)}, {MON: ((60, 60),)}, {MON: ((0, 1441),)}, {TUE: ((-1, 10),)}):
        with pytest.raises(ValueError):
            Schedule("s", windows)
    s = Schedule("s", {SUN: ((23 * 60, 0),)})  # Sunday 23:00 up to midnight, nothing on Monday
    assert s.open_at(SUN, 23 * 60 + 59) and not s.open_at(MON, 0)
