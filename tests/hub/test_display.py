"""The display's pure parts: tariff bands and costs, local periods (DST days), the good-time
rule and best windows, the message catalogues, and page formatting."""

from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.display import goodtime, periods
from hub.display.tariff import InvalidTariff, cost, parse
from hub.update import agent as update_agent
from hub.web.pages import fmt
from hub.web.pages.i18n import catalogue, parse_po

LONDON = ZoneInfo("Europe/London")
TWO_RATE = {"standing": 45, "bands": [
    {"name": "Night", "start": "23:00", "end": "07:00", "price": 7.5},
    {"name": "Day", "start": "07:00", "end": "23:00", "price": 24.5}]}


def local(y, m, d, hh=0, mm=0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=LONDON).timestamp())


# -- tariff ---------------------------------------------------------------------------------

def test_tariff_bands_wrap_midnight_and_follow_local_time():
    tariff = parse(TWO_RATE)
    assert tariff.band_at(local(2026, 7, 1, 23, 30), LONDON).name == "Night"
    assert tariff.band_at(local(2026, 7, 1, 6, 59), LONDON).name == "Night"
    assert tariff.band_at(local(2026, 7, 1, 7, 0), LONDON).name == "Day"
    assert tariff.band_at(local(2026, 1, 1, 22, 59), LONDON).name == "Day"


@pytest.mark.parametrize("bad, message", [
    ({"bands": [{"name": "Day", "start": "07:00", "end": "23:00", "price": 20}]}, "no band"),
    ({"bands": [{"name": "A", "start": "00:00", "end": "00:00", "price": 1},
                {"name": "B", "start": "01:00", "end": "02:00", "price": 1}]}, "2 bands"),
    ({"bands": [{"name": "A", "start": "24:00", "end": "00:00", "price": 1}]}, "HH:MM"),
    ({"bands": [{"name": "A", "start": "00:00", "end": "00:00", "price": -1}]}, "between"),
    ({"bands": [{"name": "A", "start": "00:00", "end": "00:00", "price": "nan"}]}, "between"),
    ({"bands": [{"name": "", "start": "00:00", "end": "00:00", "price": 1}]}, "name"),
    ({"bands": []}, "between 1 and"),
    ("flat", "object"),
])
def test_bad_tariffs_say_what_to_fix(bad, message):
    with pytest.raises(InvalidTariff, match=message):
        parse(bad)


def test_cost_rows_add_up_to_the_total():
    tariff = parse(TWO_RATE)
    day = periods.period("day", date(2026, 7, 1))
    halves = day.half_hours(LONDON)
    kwh = [0.25 + (i % 7) * 0.01 for i in range(len(halves))]
    kwh[3] = None  # a gap is skipped, never guessed
    result = cost(tariff, halves, kwh, day.days, LONDON)
    assert math.isclose(sum(r.pence for r in result.rows) + result.standing_pence, result.pence)
    assert math.isclose(result.kwh, sum(v for v in kwh if v is not None))
    night = next(r for r in result.rows if r.band == "Night")
    # 23:00-07:00 is 16 half-hours, one of them missing
    assert math.isclose(night.kwh, sum(kwh[i] for i in [*list(range(0, 14)), 46, 47]
                                       if kwh[i] is not None))
    assert result.standing_pence == 45


# -- periods --------------------------------------------------------------------------------

def test_dst_days_have_46_and_50_half_hours():
    assert len(periods.period("day", date(2026, 3, 29)).half_hours(LONDON)) == 46
    assert len(periods.period("day", date(2026, 10, 25)).half_hours(LONDON)) == 50
    assert len(periods.period("day", date(2026, 7, 1)).half_hours(LONDON)) == 48


def test_weeks_start_on_monday_and_months_step_across_years():
    week = periods.period("week", date(2026, 12, 2))
    assert (week.first, week.last) == (date(2026, 11, 30), date(2026, 12, 6))
    month = periods.period("month", date(2026, 12, 15))
    assert month.days == 31 and month.step(1).first == date(2027, 1, 1)
    assert month.step(-12).first == date(2025, 12, 1)
    october = periods.period("month", date(2026, 10, 3))
    start, end = october.bounds(LONDON)
    assert end - start == 31 * 86400 + 3600  # the extra hour of 25 October
    with pytest.raises(ValueError):
        periods.period("year", date(2026, 1, 1))


# -- good time ------------------------------------------------------------------------------

def test_score_is_ten_for_the_best_slot_and_zero_for_the_worst():
    values = [10, 8, 2, 2, 6, 10, float("nan")]
    slots = goodtime.slots(1000, 1800, values, now=1000)
    assert [s.score for s in slots[:6]] == [0.0, 2.5, 10.0, 10.0, 5.0, 0.0]
    assert [s.light for s in slots] == ["red", "red", "green", "green", "amber", "red",
                                        "unknown"]
    higher = goodtime.slots(1000, 1800, values[:6], now=1000, higher_is_better=True)
    assert higher[0].score == 10.0 and higher[2].score == 0.0


def test_card_says_when_it_changes_and_when_it_is_next_good():
    slots = goodtime.slots(0, 1800, [10, 8, 2, 2, 6, 10], now=100)
    card = goodtime.card(slots, now=100)
    assert (card.light, card.icon, card.until, card.next_green) == ("red", "✕", 3600, 3600)
    assert goodtime.card(slots, now=4000).light == "green"
    assert goodtime.card([], now=0).light == "unknown"


def test_best_windows_are_the_green_runs_best_first():
    values = [1, 1, 9, 9, 1.5, 9, 0.5, 0.5, 9]
    windows = goodtime.best_windows(goodtime.slots(0, 1800, values, now=0))
    assert [(w.start, w.end) for w in windows] == [(10800, 14400), (0, 3600), (7200, 9000)]
    flat_red = goodtime.slots(0, 1800, [5, 5], now=0)
    assert goodtime.best_windows(flat_red)[0].score == 10.0  # flat: all equally good


# -- catalogues -----------------------------------------------------------------------------

DYNAMIC = {"card.": ["green", "amber", "red", "unknown"],
           "card.%s_short": ["green", "amber", "red", "unknown"],
           "use.": list(periods.KINDS), "use.caption_": list(periods.KINDS),
           "devices.mode_": ["on", "off", "smart"],
           "devices.sync_": ["saved", "pending", "unresponsive"],
           "schedule.done_": ["off", "smart", "on"], "day.": [str(d) for d in range(7)],
           "updates.state_": list(update_agent.STATES),
           "updates.requested_": list(update_agent.ACTIONS),
           "updates.result_": list(update_agent.RESULTS),
           "settings.theme_": ["auto", "light", "dark"],
           "settings.saved_": ["display", "tariff", "welcome"],
           "best.source_": ["profile", "tariff"]}


def test_both_catalogues_have_the_same_keys_and_every_built_key_exists():
    en, cy = catalogue("en").messages, catalogue("cy").messages
    assert set(en) == set(cy)
    assert all(v and all(v) for v in cy.values())
    for prefix, values in DYNAMIC.items():
        for value in values:
            key = prefix % value if "%s" in prefix else prefix + value
            assert key in en, key


def test_welsh_has_six_plural_forms():
    cy = catalogue("cy")
    assert [cy.plural(n) for n in (0, 1, 2, 3, 6, 4, 11)] == [0, 1, 2, 3, 4, 5, 5]
    assert cy.ntext("use.days", 2) == "2 ddiwrnod"
    assert catalogue("en").ntext("use.days", 1) == "1 day"
    assert catalogue("en").text("no.such.key") == "no.such.key"


def test_po_parser_reads_continuation_lines_and_plurals():
    messages, plural = parse_po('msgid ""\nmsgstr ""\n"Plural-Forms: nplurals=2; '
                                'plural=(n != 1);\\n"\n\nmsgid "a"\nmsgstr "one "\n"two"\n\n'
                                'msgid "b"\nmsgid_plural "b"\nmsgstr[0] "x"\nmsgstr[1] "y"\n')
    assert messages == {"a": ["one two"], "b": ["x", "y"]} and plural == "(n != 1)"


# -- formatting -----------------------------------------------------------------------------

def test_formatting():
    assert (fmt.power(1234.4), fmt.power(12345), fmt.power(None)) == ("1,234 W", "12.3 kW", "–")
    assert fmt.money(1234.5) == "£12.35" and fmt.kwh(1.234) == "1.23 kWh"
    assert fmt.day_label(local(2026, 12, 2, 12), LONDON, "cy") == "Mer 2"
    bars = fmt.bars([1, None, 2], ["a", "b", "c"], ["1", "–", "2"], ["x"] * 3, 30, 10)
    assert [b.height for b in bars] == [5.0, 0.0, 10.0] and bars[2].y == 0.0
