"""The node-liveness blast-radius guard, table-driven."""

from __future__ import annotations

import pytest

from bgplb.controller.disruption import GuardState, Liveness, step

N = frozenset
WINDOW = 3.0


@pytest.mark.parametrize(
    ("accepted", "observed", "live", "frozen"),
    [
        (None, N({"a"}), N({"a"}), False),  # the first plan takes what it sees
        (N(), N({"a"}), N({"a"}), False),
        (N("abcd"), N("abc"), N("abc"), False),  # one node dies: it goes
        (N("abcd"), N("ab"), N("ab"), False),  # half: still believed
        (N("abcd"), N("a"), N("abcd"), True),  # more than half at once: frozen
        (N("abcd"), N(), N("abcd"), True),  # every Lease stale: frozen
        (N("abcde"), N("ae") | {"f"}, N("abcdef"), True),  # a newcomer is still taken
        (N("ab"), N(), N(), False),  # two nodes: too few to tell a fault from deaths
    ],
)
def test_one_step(
    accepted: frozenset[str] | None, observed: frozenset[str], live: frozenset[str], frozen: bool
) -> None:
    state, verdict = step(GuardState(accepted), observed, 10.0, WINDOW)
    assert verdict.live == live
    assert verdict.frozen is frozen
    assert state.accepted == live
    assert state.frozen is frozen
    if frozen:
        assert accepted is not None
        assert verdict.stale == accepted - observed
    # whoever leaves the live set is stamped with the time, for the window
    assert set(state.given_up_at) == (accepted or N()) - live


def run(observations: list[tuple[float, frozenset[str]]]) -> list[Liveness]:
    """The controller's loop: one step per reconcile, starting from all of a, b, c."""
    state = GuardState(N("abc"))
    verdicts = []
    for now, observed in observations:
        state, verdict = step(state, observed, now, WINDOW)
        verdicts.append(verdict)
    return verdicts


def test_leases_expiring_a_moment_apart_still_freeze() -> None:
    """One fault, Leases expiring 0.5 s apart (their agents renewed at different
    moments), a reconcile at each expiry. Without the window b goes alone, then c is
    one of two and goes too."""
    verdicts = run([(1.0, N("ac")), (1.5, N("a")), (2.0, N("a"))])
    assert [v.frozen for v in verdicts] == [False, True, True]
    assert verdicts[0].live == N("ac")  # b went first, alone: a death as far as we know
    assert verdicts[-1].live == N("ac")  # c held; b is not taken back (no second UPDATE)
    assert verdicts[-1].stale == N("bc")


def test_deaths_further_apart_than_the_window_are_deaths() -> None:
    verdicts = run([(1.0, N("ac")), (5.0, N("a"))])
    assert [v.frozen for v in verdicts] == [False, False]
    assert verdicts[-1].live == N("a")


def test_a_freeze_outlasts_the_window_until_leases_are_fresh() -> None:
    verdicts = run(
        [(1.0, N("ac")), (1.5, N("a")), (60.0, N("a")), (61.0, N("ab")), (62.0, N("abc"))]
    )
    assert [v.frozen for v in verdicts] == [False, True, True, False, False]
    assert verdicts[2].live == N("ac")  # still held a minute on
    assert verdicts[3].live == N("ab")  # released: b is back; c, still stale, now goes
    assert verdicts[4].live == N("abc")
