"""The node-liveness blast-radius guard, table-driven."""

from __future__ import annotations

import pytest

from bgplb.controller.disruption import guard

N = frozenset


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
def test_guard(
    accepted: frozenset[str] | None, observed: frozenset[str], live: frozenset[str], frozen: bool
) -> None:
    verdict = guard(accepted, observed)
    assert verdict.live == live
    assert verdict.frozen is frozen
    if frozen:
        assert accepted is not None
        assert verdict.stale == accepted - observed
