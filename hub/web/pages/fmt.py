"""Formatting for the pages: numbers, times in the household's zone, money, and the geometry
of the server-drawn bar charts. Pure functions, so tests reach them without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

WELSH_DAYS = ("Llun", "Maw", "Mer", "Iau", "Gwe", "Sad", "Sul")
ENGLISH_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WELSH_MONTHS = ("Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf",
                "Awst", "Medi", "Hydref", "Tachwedd", "Rhagfyr")
ENGLISH_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December")


def power(watts: float | None) -> str:
    if watts is None:
        return "–"
    if abs(watts) >= 10000:
        return f"{watts / 1000:.1f} kW"
    return f"{watts:,.0f} W"


def kw(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} kW"


def kwh(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} kWh"


def pence(value: float) -> str:
    return f"{value:.2f}p"


def money(pence_total: float) -> str:
    return f"£{pence_total / 100:,.2f}"


def hhmm(t: float | None, tz: ZoneInfo) -> str:
    return "–" if t is None else datetime.fromtimestamp(t, tz).strftime("%H:%M")


def day_label(t: float, tz: ZoneInfo, lang: str) -> str:
    local = datetime.fromtimestamp(t, tz)
    days = WELSH_DAYS if lang == "cy" else ENGLISH_DAYS
    return f"{days[local.weekday()]} {local.day}"


def date_label(day, lang: str) -> str:
    months = WELSH_MONTHS if lang == "cy" else ENGLISH_MONTHS
    return f"{day.day} {months[day.month - 1]} {day.year}"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    css: str  # a class name (colour and hatch pattern both, never colour alone)


def bars(values: Sequence[float | None], labels: Sequence[str], texts: Sequence[str],
         classes: Sequence[str], width: float = 100.0, height: float = 40.0) -> list[Bar]:
    """Geometry of a bar chart in a `viewBox="0 0 width height"` SVG; None draws no bar."""
    top = max([v for v in values if v is not None] + [0.0]) or 1.0
    step = width / max(len(values), 1)
    out = []
    for i, value in enumerate(values):
        h = 0.0 if value is None else max(0.0, value) / top * height
        out.append(Bar(round(i * step + step * 0.1, 3), round(height - h, 3),
                       round(step * 0.8, 3), round(h, 3), labels[i], texts[i], classes[i]))
    return out
