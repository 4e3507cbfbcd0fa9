"""The bound on one reconcile's withdrawals, table-driven over a plan's routes."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest

from bgplb.controller.withdrawals import FLOOR, PACE_SECONDS, bound, window
from bgplb.core.plan import DesiredState
from bgplb.core.routes import Route

HOP = (IPv4Address("192.0.2.11"),)


def state(n: int) -> DesiredState:
    routes = {
        f"ns/s{i:04}": Route(IPv4Network(f"203.0.113.{i % 250}/32"), HOP, f"ns/s{i:04}")
        for i in range(n)
    }
    vips = {k: r.prefix.network_address for k, r in routes.items()}
    return DesiredState(routes=routes, vips=vips)


@pytest.mark.parametrize(
    ("before", "after", "asked", "kept"),
    [
        (100, 0, False, 75),  # input that looks empty: a quarter goes now
        (100, 0, True, 0),  # the configuration asked: all of it
        (100, 80, False, 80),  # within the bound
        (100, 74, False, 75),  # just past it
        (3, 0, False, 0),  # a handful is never held
        (12, 0, False, 8),  # the floor of four
    ],
)
def test_one_reconcile(before: int, after: int, asked: bool, kept: int) -> None:
    budget = window(None, before, 0.0)
    result = bound(state(before), state(after), asked=asked, allowed=budget.allowed)
    assert len(result.desired.routes) == kept
    assert result.held == max(0, kept - after)
    # what is held is what was there, VIP and all
    for key, route in result.desired.routes.items():
        assert route == state(before).routes[key]
        assert result.desired.vips[key] == route.prefix.network_address


def test_the_budget_is_the_windows_not_each_reconciles() -> None:
    """Reconciles a moment apart (deletions trickling in) share one budget."""
    budget = window(None, 100, 0.0)
    first = bound(state(100), state(90), asked=False, allowed=budget.allowed)
    assert first.held == 0
    budget = window(budget, 90, 0.5)
    assert budget.started == 0.0  # the same window
    budget = replace(budget, used=first.withdrawn)
    second = bound(first.desired, state(0), asked=False, allowed=budget.allowed - budget.used)
    assert len(second.desired.routes) == 75  # 25 in the window, not 10 + 25
    assert window(budget, 75, PACE_SECONDS).allowed == 19  # a new window: a quarter of 75


def test_a_mass_deletion_still_completes_paced() -> None:
    current, steps, now = state(1000), 0, 0.0
    budget = None
    while current.routes:
        budget = window(budget, len(current.routes), now)
        result = bound(current, state(0), asked=False, allowed=budget.allowed - budget.used)
        current, now, steps = result.desired, now + PACE_SECONDS, steps + 1
    assert 10 <= steps <= 25


def test_the_first_plan_is_not_bounded() -> None:
    assert bound(None, state(0), asked=False, allowed=0).held == 0
    assert window(None, 0, 0.0).allowed == FLOOR
