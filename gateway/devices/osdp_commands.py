"""What a door tells its reader: the OSDP command dicts (libosdp's form) for grant and deny.

Pure: no I/O. Each command comes with whether the outcome depends on it
(the strike pulse for a grant, the red LED for a deny); LED and beep for a
grant are feedback only.
"""

from __future__ import annotations

import osdp

# OSDP output control code 5: "permanent state ON, then timed pulse" -> on for timer_count x 100 ms.
OUTPUT_PULSE = 5
# LED temporary control code 2: set the temporary state and start its timer.
LED_TEMPORARY = 2
# Buzzer tone code 2: the reader's default tone.
BUZZER_DEFAULT_TONE = 2


def _ticks(ms: int) -> int:
    """Milliseconds as OSDP's 100 ms timer steps (one byte in libosdp's binding)."""
    return max(1, min(255, round(ms / 100)))


def led(reader_no: int, color: int, ticks: int) -> dict:
    return {
        "command": osdp.Command.LED,
        "reader": reader_no,
        "led_number": 0,
        "temporary": True,
        "control_code": LED_TEMPORARY,
        "on_color": color,
        "off_color": osdp.CommandLEDColor.Black,
        "on_count": 10,
        "off_count": 0,
        "timer_count": ticks,
    }


def beep(reader_no: int, on_count: int) -> dict:
    return {
        "command": osdp.Command.Buzzer,
        "reader": reader_no,
        "control_code": BUZZER_DEFAULT_TONE,
        "on_count": on_count,
        "off_count": 1,
        "rep_count": 1,
    }


def grant(strike_ms: int, output_no: int = 0, reader_no: int = 0) -> list[tuple[dict, bool]]:
    """Pulse the strike output for strike_ms, green LED, short beep."""
    ticks = _ticks(strike_ms)
    pulse = {"command": osdp.Command.Output, "output_no": output_no, "control_code": OUTPUT_PULSE, "timer_count": ticks}
    return [(pulse, True), (led(reader_no, osdp.CommandLEDColor.Green, ticks), False), (beep(reader_no, 1), False)]


def deny(show_ms: int = 2000, reader_no: int = 0) -> list[tuple[dict, bool]]:
    """Red LED for show_ms and a long beep."""
    return [(led(reader_no, osdp.CommandLEDColor.Red, _ticks(show_ms)), True), (beep(reader_no, 10), False)]
