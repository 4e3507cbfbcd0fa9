"""Self-fencing needs witnesses; the controller freezes liveness while it is blind."""

from __future__ import annotations

import time

from bgplb.agent.witness import keep_floating_ips
from bgplb.controller.main import Controller


def test_keep_floating_ips_only_when_witnesses_agree_the_api_is_down_for_all() -> None:
    assert keep_floating_ips([0.0, 0.0, None], settled=2)  # API down everywhere
    assert not keep_floating_ips([0.0, 30.0], settled=2)  # someone reaches it: partitioned
    assert not keep_floating_ips([None, None], settled=2)  # nobody answers: I am isolated
    assert not keep_floating_ips([], settled=2)  # alone: cannot tell, be safe


def test_witnesses_just_back_in_contact_mean_the_api_server_just_came_back() -> None:
    # Agents renew a second apart: the first back must not make the others fence.
    assert keep_floating_ips([0.4, 0.0, 0.0], settled=2)
    assert not keep_floating_ips([2.5, 0.0], settled=2)


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
