"""The mesh's verdicts: who is held for dead, by quorum, with a hold-down."""

from __future__ import annotations

from collections.abc import Mapping, Set
from ipaddress import IPv4Address

import pytest

from bgplb.agent.mesh import (
    CONFIRM,
    HOLD_DOWN,
    INTERVAL,
    LOST_PROBES,
    NEVER_HEARD_AFTER,
    SILENT_AFTER,
    Mesh,
    without_dead_next_hops,
)
from bgplb.api import BGPAdvertisedRouteSpec

PEERS = ("n2", "n3", "n4")


def mesh(at: float = 0.0) -> Mesh:
    return Mesh("n1").peers(PEERS, at)


def hear(m: Mesh, now: float, answers: Mapping[str, Set[str]]) -> Mesh:
    """Probe every peer each INTERVAL since the last probes up to `now`, take
    `answers` (the others' answers are lost), re-decide."""
    t = now if m.last_probe is None else m.last_probe + INTERVAL
    while t <= now + 1e-9:
        m = m.probed(m.known_since, t)
        t += INTERVAL
    for node, suspects in answers.items():
        m = m.answered(node, suspects, now)
    return m.tick(now)


def hear_for(m: Mesh, now: float, answers: Mapping[str, Set[str]]) -> Mesh:
    """The same answers from `now` for CONFIRM: a quorum long enough for a verdict."""
    return hear(hear(m, now, answers), now + CONFIRM, answers)


LATER = SILENT_AFTER + 0.15
"""Long enough after the last answer for a peer to be silent."""


@pytest.mark.parametrize(
    ("answers", "dead"),
    [
        # everyone answers, nobody lost: nothing
        ({"n2": set(), "n3": set(), "n4": set()}, set()),
        # n4 silent to me and to both others: dead
        ({"n2": {"n4"}, "n3": {"n4"}}, {"n4"}),
        # n4 silent to me only (my bad link): the others still hear it
        ({"n2": set(), "n3": set()}, set()),
        # n4 silent to me and to n2; n3 hears it: two of three probers — dead
        ({"n2": {"n4"}, "n3": set()}, {"n4"}),
        # I hear nobody: my own vote is no majority
        ({}, set()),
        # n2 says it lost n3 and n4, but I hear both and n3 and n4 hear each other
        ({"n2": {"n3", "n4"}, "n3": set(), "n4": set()}, set()),
    ],
)
def test_quorum(answers: dict[str, set[str]], dead: set[str]) -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})  # all heard at first
    m = hear_for(m, LATER, answers)
    assert m.dead == frozenset(dead)


def test_a_quorum_for_one_probe_is_no_verdict() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = hear(m, LATER, {"n2": {"n4"}, "n3": {"n4"}})
    assert m.dead == frozenset()
    m = hear(m, LATER + INTERVAL, {"n2": set(), "n3": set(), "n4": set()})
    m = hear_for(m, LATER + 2 * INTERVAL, {"n2": set(), "n3": set(), "n4": set()})
    assert m.dead == frozenset()


def test_my_bad_link_alone_withdraws_nothing() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = hear(m, LATER, {"n2": set(), "n3": set()})  # n4's answers to me are lost
    assert m.suspects(LATER) == {"n4"}
    assert m.dead == frozenset()


def test_a_new_peer_is_not_suspected_at_once() -> None:
    everyone: dict[str, set[str]] = {"n2": set(), "n3": set(), "n4": set()}
    m = hear(mesh(), 0.0, everyone)
    m = m.peers([*PEERS, "n5"], 0.1)
    m = hear(m, 0.2, everyone)
    assert "n5" not in m.suspects(0.2)
    # Listed before its agent answers: starting is not dying.
    m = hear(m, 0.1 + LATER, everyone)
    assert "n5" not in m.suspects(0.1 + LATER)
    m = hear(m, 0.1 + NEVER_HEARD_AFTER, everyone)
    assert "n5" in m.suspects(0.1 + NEVER_HEARD_AFTER)
    # Once heard, silence counts at once.
    m = hear(m, 11.0, {**everyone, "n5": set()})
    m = hear(m, 11.0 + LATER, everyone)
    assert "n5" in m.suspects(11.0 + LATER)


def test_a_starting_agent_is_not_held_for_dead_by_the_others() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = m.peers([*PEERS, "n5"], 0.0)
    # n5 is known to everyone but answers nobody yet; the others say the same.
    for t in (0.5, 1.0, 2.0, 5.0):
        m = hear(m, t, {"n2": m.suspects(t) & {"n5"}, "n3": set(), "n4": set()})
    assert m.dead == frozenset()


def test_a_dead_node_comes_back_only_after_the_hold_down() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = hear_for(m, LATER, {"n2": {"n4"}, "n3": {"n4"}})
    assert m.dead == {"n4"}
    back = LATER + 1.0
    m = hear(m, back, {"n2": set(), "n3": set(), "n4": set()})
    assert m.dead == {"n4"}  # alive again, but held off
    m = hear(m, back + HOLD_DOWN - 0.1, {"n2": set(), "n3": set(), "n4": set()})
    assert m.dead == {"n4"}
    m = hear(m, back + HOLD_DOWN, {"n2": set(), "n3": set(), "n4": set()})
    assert m.dead == frozenset()


def test_a_flap_during_the_hold_down_restarts_it() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = hear_for(m, LATER, {"n2": {"n4"}, "n3": {"n4"}})
    m = hear(m, 1.0, {"n2": set(), "n3": set(), "n4": set()})
    m = hear(m, 1.0 + LATER, {"n2": {"n4"}, "n3": {"n4"}})  # gone again
    m = hear(m, 2.0, {"n2": set(), "n3": set(), "n4": set()})
    m = hear(m, 1.0 + HOLD_DOWN + 0.1, {"n2": set(), "n3": set(), "n4": set()})
    assert m.dead == {"n4"}  # the hold-down began again at 2.0


def test_answers_from_strangers_are_ignored_and_departed_peers_forgotten() -> None:
    m = hear(mesh(), 0.0, {"n9": {"n2"}})
    assert "n9" not in m.heard
    m = hear(m, 0.0, {n: set() for n in PEERS})
    m = hear(m, LATER, {"n2": {"n4"}, "n3": {"n4"}})
    m = m.peers(["n2", "n3"], LATER)  # n4 left the cluster
    assert m.dead == frozenset()
    assert "n4" not in m.known_since


def route(*hops: str) -> BGPAdvertisedRouteSpec:
    return BGPAdvertisedRouteSpec.model_validate(
        {"prefix": "203.0.113.10/32", "nextHops": list(hops)}
    )


def test_dead_next_hops_are_left_out_but_never_the_last() -> None:
    dead = [IPv4Address("192.0.2.14")]
    (kept,) = without_dead_next_hops([route("192.0.2.11", "192.0.2.14")], dead)
    assert kept.next_hops == [IPv4Address("192.0.2.11")]
    (only,) = without_dead_next_hops([route("192.0.2.14")], dead)
    assert only.next_hops == [IPv4Address("192.0.2.14")]


def test_a_pause_covers_a_restart_then_silence_counts_again() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    m = m.paused("n4", 5.0)
    m = hear(m, 4.9, {"n2": {"n4"}, "n3": {"n4"}})
    assert "n4" not in m.suspects(4.9)
    assert m.dead == frozenset()
    m = hear_for(m, 5.0 + LATER, {"n2": {"n4"}, "n3": {"n4"}})
    assert m.dead == {"n4"}


def test_an_agent_that_sent_no_probes_suspects_nobody() -> None:
    """Its own stall (CPU starved, the machine paused) is not the others' silence."""
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    assert m.suspects(2.0) == frozenset()
    m = m.tick(2.0)
    assert m.suspects(2.0) == frozenset()
    assert m.dead == frozenset()


def test_silence_needs_four_lost_probes_not_only_time() -> None:
    m = hear(mesh(), 0.0, {n: set() for n in PEERS})
    for _ in range(LOST_PROBES - 1):
        m = m.probed(PEERS, 0.1)
    assert m.suspects(LATER) == frozenset()
    m = m.probed(PEERS, 0.2)
    assert m.suspects(LATER) == frozenset(PEERS)


NODES = ("n1", "n2", "n3", "n4")


def simulate(
    asleep: set[str],
    between: tuple[float, float],
    until: float = 5.0,
    network_stalled: tuple[float, float] | None = None,
) -> set[str]:
    """Four agents probing each other every INTERVAL over a lossless network; the
    `asleep` ones neither probe nor answer `between` (a process or machine stalled,
    or a node dead for good if the end is past `until`). Each agent, as the agent's
    loop does: probes, re-decides, then takes the answers. Returns every node any
    awake agent ever held for dead.

    `network_stalled`: every agent runs and probes, but no datagram arrives in
    that time; at its end every held probe arrives at once, each agent answers
    them all with what it suspects then (everyone), and only then do the answers
    reach anybody (seen in CI's soak: a lab-wide stall)."""
    meshes = {n: Mesh(n).peers(NODES, 0.0) for n in NODES}
    held: set[str] = set()
    stalled = False
    step = 0
    while (t := step * INTERVAL) <= until:
        sleeping = asleep if between[0] <= t < between[1] else set()
        was_stalled = stalled
        stalled = network_stalled is not None and network_stalled[0] <= t < network_stalled[1]
        released = was_stalled and not stalled
        # The burst's answers are written before any of them arrives.
        said = {n: meshes[n].suspects(t) for n in NODES}
        for node in NODES:
            if node in sleeping:
                continue
            others = [n for n in NODES if n != node]
            m = meshes[node].probed(others, t).tick(t)
            for peer in others:
                if peer not in sleeping and not stalled:
                    m = m.answered(peer, said[peer] if released else meshes[peer].suspects(t), t)
            meshes[node] = m
            held |= m.dead
        step += 1
    return held


@pytest.mark.parametrize(
    ("asleep", "held"),
    [
        # The whole machine paused for a second (seen in CI under the soak): every
        # agent wakes at once. Nobody is dead.
        (set(NODES), set()),
        # One agent's process stalled a second: it answered nobody, so the others
        # hold it (and only it) for dead; what it says on waking condemns nobody.
        ({"n4"}, {"n4"}),
    ],
)
def test_a_stall_holds_for_dead_only_who_went_unanswered(asleep: set[str], held: set[str]) -> None:
    assert simulate(asleep, (1.0, 2.0)) == held


def test_a_dead_node_is_held_for_dead_within_about_three_quarters_of_a_second() -> None:
    # n4 answered last at 0.9: four lost probes and 0.35 s later the others agree,
    # and their quorum holds for CONFIRM.
    assert simulate({"n4"}, (1.0, 99.0), until=1.55) == set()
    assert simulate({"n4"}, (1.0, 99.0), until=1.85) == {"n4"}


@pytest.mark.parametrize("stall", [(1.0, 1.6), (1.0, 2.0), (1.05, 4.0)])
def test_a_lab_wide_network_stall_holds_nobody_for_dead(stall: tuple[float, float]) -> None:
    """Every probe went unanswered for a second, everywhere: everyone really was
    silent to everyone, and the first answers after it say so. Those suspects are
    stale by the next probe, so a quorum that lasts one probe is no verdict."""
    assert simulate(set(), (0.0, 0.0), until=6.0, network_stalled=stall) == set()


def test_a_node_that_dies_in_a_network_stall_is_still_held_for_dead() -> None:
    assert simulate({"n4"}, (1.5, 99.0), network_stalled=(1.0, 2.0)) == {"n4"}
