"""Self-fencing needs witnesses; the controller freezes liveness while it is blind."""

from __future__ import annotations

import time

import pytest

from bgplb.agent.witness import Answer, keep_floating_ips, parse
from bgplb.controller.main import Controller


def test_keep_floating_ips_only_when_witnesses_agree_the_api_is_down_for_all() -> None:
    down, up = Answer(0.0), Answer(30.0, renewed_ago=0.3)
    assert keep_floating_ips([down, down, None], settled=2, failing_for=1.5)  # down everywhere
    assert not keep_floating_ips([down, up], settled=2, failing_for=1.5)  # partitioned
    assert not keep_floating_ips([None, None], settled=2, failing_for=1.5)  # I am isolated
    assert not keep_floating_ips([], settled=2, failing_for=1.5)  # alone: cannot tell, be safe


def test_witnesses_just_back_in_contact_mean_the_api_server_just_came_back() -> None:
    # Agents renew a second apart: the first back must not make the others fence.
    assert keep_floating_ips([Answer(0.4, 0.1), Answer(0.0, 60)], settled=2, failing_for=60)
    assert not keep_floating_ips([Answer(2.5, 0.1), Answer(0.0, 60)], settled=2, failing_for=60)


def test_a_witness_that_has_not_renewed_since_i_began_failing_proves_nothing() -> None:
    """Found on real kubelets (agents out of phase): the API server has just gone; a
    witness whose last renewal came before this agent's first failure still reports
    minutes of contact. Its renewal predates the outage: keep."""
    stale = Answer(reachable_for=300.0, renewed_ago=1.2)
    assert keep_floating_ips([stale, Answer(0.0, 1.5)], settled=2, failing_for=1.0)
    # Renewed after this agent began failing: the API server serves others.
    fresh = Answer(reachable_for=300.0, renewed_ago=0.4)
    assert not keep_floating_ips([fresh], settled=2, failing_for=1.0)
    # An older witness that does not say when it renewed counts as in contact.
    assert not keep_floating_ips([Answer(300.0)], settled=2, failing_for=1.0)


@pytest.mark.parametrize(
    "body",
    [[], None, "x", {}, {"reachableForSeconds": "3"}, {"reachableForSeconds": True},
     {"reachableForSeconds": 1, "renewedSecondsAgo": []}],
)  # fmt: skip
def test_malformed_witness_answers_count_as_no_answer(body: object) -> None:
    assert parse(body) is None


def test_witness_answers_parse() -> None:
    assert parse({"reachableForSeconds": 3, "renewedSecondsAgo": 0.5}) == Answer(3.0, 0.5)
    assert parse({"reachableForSeconds": 0, "renewedSecondsAgo": None}) == Answer(0.0, None)


def _lease(name: str, renewed: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"holderIdentity": name, "renewTime": renewed},
    }


def test_controller_freezes_liveness_while_blind_and_credits_nodes_after() -> None:
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:00.000000Z")])
    now = time.monotonic()
    c.state.lease_seen["bgplb-node-n1"] = now  # just renewed
    c.state.lease_seen["bgplb-node-n2"] = now - 10  # long dead
    c.contact(None)
    assert c.frozen_live is None  # one failed probe is noise
    c.contact(None)
    assert c.live_nodes() == {"bgplb-node-n1"}
    c.state.lease_seen["bgplb-node-n1"] = now - 60  # what a minute without renewals looks like
    assert c.live_nodes() == {"bgplb-node-n1"}, "frozen while blind"
    c.contact([])
    assert c.frozen_live is None
    assert c.live_nodes() == {"bgplb-node-n1"}, "credited a fresh lease period"
    assert "bgplb-node-n2" not in c.live_nodes()


def test_a_renewal_seen_by_the_probe_counts_as_one() -> None:
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:00.000000Z")])
    assert c.live_nodes() == frozenset()  # first sight of an old renewTime: dead
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:01.000000Z")])
    assert c.live_nodes() == {"bgplb-node-n1"}
