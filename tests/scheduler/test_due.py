"""Pure scheduling decisions: cron ticks inside a week, overrides, and which products are due."""

from __future__ import annotations

import datetime as dt

import pytest

from specfleet.core.errors import ConfigurationError
from specfleet.scheduler.due import (
    Cron,
    ProductFacts,
    Schedule,
    WindowEvaluation,
    decide_due,
    due_product_ids,
)

UTC = dt.UTC


def test_weekly_tick_is_the_first_firing_in_the_week_in_the_schedule_time_zone() -> None:
    """Monday 06:00 Berlin in 2026-W48 is 05:00 UTC on 23 November."""
    schedule = Schedule.from_config("0 6 * * 1", "Europe/Berlin")
    assert schedule.tick("orders", "2026-W48") == dt.datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def test_window_of_a_moment_follows_the_schedule_time_zone() -> None:
    """Sunday 23:30 UTC is already Monday (the next ISO week) in Berlin."""
    moment = dt.datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert Schedule.from_config("0 6 * * 1", "UTC").window_at(moment) == "2026-W48"
    assert Schedule.from_config("0 6 * * 1", "Europe/Berlin").window_at(moment) == "2026-W49"


def test_cron_lists_ranges_steps_and_sunday_as_seven() -> None:
    """Cron's field syntax is understood, and 7 means Sunday like 0."""
    cron = Cron.parse("*/15 6-8 * * 1,7")
    assert cron.minutes == frozenset({0, 15, 30, 45})
    assert cron.hours == frozenset({6, 7, 8})
    assert cron.weekdays == frozenset({1, 0})


def test_cron_day_of_month_or_day_of_week_when_both_are_given() -> None:
    """With both day fields restricted, cron fires when either matches."""
    cron = Cron.parse("0 6 1 * 3")
    assert cron.fires_on(dt.date(2026, 12, 1))  # a Tuesday, but the 1st
    assert cron.fires_on(dt.date(2026, 12, 2))  # a Wednesday
    assert not cron.fires_on(dt.date(2026, 12, 3))


@pytest.mark.parametrize(
    ("expression", "named"),
    [("0 6 * *", "5 fields"), ("61 6 * * 1", "minute"), ("0 6 * * mon", "day of week")],
)
def test_bad_cron_names_the_field(expression: str, named: str) -> None:
    """A malformed schedule is a configuration error saying which field is wrong."""
    with pytest.raises(ConfigurationError, match=named):
        Cron.parse(expression)


def test_unknown_time_zone_is_a_configuration_error() -> None:
    """A misspelt SPECFLEET_TIMEZONE is reported by name."""
    with pytest.raises(ConfigurationError, match="Mars/Olympus"):
        Schedule.from_config("0 6 * * 1", "Mars/Olympus")


def test_monthly_and_paused_overrides_skip_weeks() -> None:
    """A monthly product is only due in the week holding the 1st; a paused one never."""
    schedule = Schedule.from_config(
        "0 6 * * 1", "UTC", {"monthly": "0 6 1 * *", "legacy": "paused"}
    )
    products = [ProductFacts("orders"), ProductFacts("monthly"), ProductFacts("legacy")]
    w49 = decide_due(products, [], schedule, "2026-W49", None)  # holds 1 December
    w50 = decide_due(products, [], schedule, "2026-W50", None)
    assert due_product_ids(w49) == ["orders", "monthly"]
    assert due_product_ids(w50) == ["orders"]
    reasons = {decision.product_id: decision.reason for decision in w50}
    assert reasons["legacy"] == "paused"
    assert "does not fire" in reasons["monthly"]


def test_product_is_due_once_its_tick_has_passed() -> None:
    """Before Monday's tick nothing is due; after it every product is; a later override waits."""
    schedule = Schedule.from_config("0 6 * * 1", "UTC", {"late": "0 6 * * 3"})
    products = [ProductFacts("orders"), ProductFacts("late")]
    before = dt.datetime(2026, 11, 23, 5, 59, tzinfo=UTC)
    after = dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert due_product_ids(decide_due(products, [], schedule, "2026-W48", before)) == []
    assert due_product_ids(decide_due(products, [], schedule, "2026-W48", after)) == ["orders"]


def test_existing_and_pending_evaluations_and_removed_products_are_not_due() -> None:
    """A weekly evaluation in the window, any pending evaluation, or removal keeps a product out."""
    schedule = Schedule.from_config("0 6 * * 1", "UTC")
    products = [
        ProductFacts("done-weekly"),
        ProductFacts("policy-queued"),
        ProductFacts("policy-done"),
        ProductFacts("removed", active=False),
        ProductFacts("fresh"),
    ]
    existing = [
        WindowEvaluation("done-weekly", "weekly", "done"),
        WindowEvaluation("policy-queued", "policy", "queued"),
        WindowEvaluation("policy-done", "policy", "done"),
    ]
    decisions = decide_due(products, existing, schedule, "2026-W48", None)
    assert due_product_ids(decisions) == ["policy-done", "fresh"]
