"""Moves between live nodes break before they make (core/floating.py hand_over)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from bgplb.api.contract import format_holding, parse_holding
from bgplb.core.floating import Placement, hand_over, place_floating_ips
from bgplb.core.snapshot import Node

IP = IPv4Address("192.0.2.100")
IP2 = IPv4Address("192.0.2.101")


def node(
    name: str,
    holding: set[IPv4Address] | None = None,
    epoch: int | None = 0,
    ready: bool = True,
) -> Node:
    last = {"n1": 11, "n2": 12, "n3": 13}[name]
    return Node(
        name,
        (IPv4Interface(f"192.0.2.{last}/24"),),
        ready=ready,
        holding=frozenset(holding or ()),
        holding_epoch=epoch,
    )


def target(to: str) -> Placement:
    return Placement({IP: to}, {})


@pytest.mark.parametrize(
    ("nodes", "current", "releasing", "expected"),
    [
        # first placement: nobody holds it
        ([node("n1"), node("n2")], {}, {}, ("n2", None, 5)),
        # n1 live and assigned: release first, in a new epoch
        ([node("n1", {IP}, 5), node("n2")], {IP: "n1"}, {}, (None, "n1", 6)),
        # n1's Lease still shows it
        ([node("n1", {IP}, 5), node("n2")], {}, {IP: "n1"}, (None, "n1", 5)),
        # n1's Lease predates the release: it may yet plumb it from older inputs
        ([node("n1", set(), 4), node("n2")], {}, {IP: "n1"}, (None, "n1", 5)),
        # n1 reports the release's epoch without it: hand it over
        ([node("n1", set(), 5), node("n2")], {}, {IP: "n1"}, ("n2", None, 5)),
        # n1's Lease expired: it fenced itself, no wait (failover speed)
        ([node("n1", {IP}, 4, ready=False), node("n2")], {IP: "n1"}, {}, ("n2", None, 5)),
        ([node("n1", {IP}, 4, ready=False), node("n2")], {}, {IP: "n1"}, ("n2", None, 5)),
        # an agent that reports no epoch is taken at its word
        ([node("n1", set(), None), node("n2")], {}, {IP: "n1"}, ("n2", None, 5)),
        # a third live node says it holds it (a status lost, a restart): wait for it too
        ([node("n1"), node("n2"), node("n3", {IP}, 5)], {}, {}, (None, "n3", 5)),
        # the target was the releasing node all along: no wait
        ([node("n1", set(), 5), node("n2")], {}, {IP: "n2"}, ("n2", None, 5)),
    ],
)  # fmt: skip
def test_hand_over(
    nodes: list[Node],
    current: dict[IPv4Address, str],
    releasing: dict[IPv4Address, str],
    expected: tuple[str | None, str | None, int],
) -> None:
    holder, giver, epoch = expected
    out = hand_over(target("n2"), nodes, current, releasing, 5)
    assert out.holders.get(IP) == holder
    assert out.releasing.get(IP) == giver
    assert out.epoch == epoch
    if giver:
        assert out.unplaced[IP] == f"moving to node n2: waiting for node {giver} to release it"


def test_a_rebalance_between_live_nodes_goes_through_a_release() -> None:
    """n1 holds both IPs; n2 comes up: one IP moves, in three steps of the loop the
    controller runs (plan, write, agents report)."""
    nodes = [node("n1", {IP, IP2}, 0), node("n2", set(), 0)]
    current = {IP: "n1", IP2: "n1"}
    first = hand_over(place_floating_ips([IP, IP2], nodes, current), nodes, current, {}, 0)
    (moving,) = first.releasing
    assert first.holders == {IP2 if moving == IP else IP: "n1"}
    assert first.epoch == 1
    # the status written; n1's agent has not yet applied it: still waiting
    again = hand_over(
        place_floating_ips([IP, IP2], nodes, first.holders), nodes, first.holders,
        first.releasing, first.epoch,
    )  # fmt: skip
    assert again.releasing == first.releasing
    assert again.epoch == 1
    # n1 reports epoch 1 without it
    nodes = [node("n1", {IP, IP2} - {moving}, 1), node("n2", set(), 0)]
    done = hand_over(
        place_floating_ips([IP, IP2], nodes, first.holders), nodes, first.holders,
        first.releasing, first.epoch,
    )  # fmt: skip
    assert done.holders[moving] == "n2"
    assert not done.releasing


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("3:192.0.2.100,192.0.2.101", (3, frozenset({IP, IP2}))),
        ("0:", (0, frozenset())),
        (None, None),
        ("", None),
        ("192.0.2.100", None),
        ("x:192.0.2.100", None),
        ("1:not-an-ip", None),
    ],
)
def test_holding_annotation(text: str | None, parsed: object) -> None:
    assert parse_holding(text) == parsed


def test_holding_annotation_round_trip() -> None:
    assert parse_holding(format_holding(7, [IP2, IP])) == (7, frozenset({IP, IP2}))
