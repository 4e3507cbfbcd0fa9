"""The controller's index after a watch gap, and its elector through API outages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError

from bgplb.controller import main
from bgplb.controller.main import Controller

NS = "kube-system"


def _session(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"peerIP": "192.0.2.1"}}


def _slice(name: str, service: str) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": service}
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}}


def _indexed(c: Controller, *names: str) -> None:
    for name in names:
        c.watched("bgpsessions", {"type": "ADDED", "object": _session(name)})


def test_a_relist_drops_what_went_during_the_gap() -> None:
    """kopf's re-LIST reports only what is there: a session deleted during the gap
    stayed in the index, and the controller never created it again."""
    c = Controller(NS, "me")
    _indexed(c, "a", "b")
    assert c.relisted("bgpsessions", [_session("a")], touched=set()) == ["b"]
    assert set(c.state.sessions) == {"a"}


def test_a_relist_leaves_what_the_watch_changed_since_the_list_began() -> None:
    c = Controller(NS, "me")
    _indexed(c, "a", "new")
    c.trigger.clear()
    assert c.relisted("bgpsessions", [_session("a")], touched={"new"}) == []
    assert set(c.state.sessions) == {"a", "new"}


def test_a_relist_drops_slices_claimed_or_not_and_other_kinds() -> None:
    c = Controller(NS, "me")
    c.state.services["default/s"] = {"metadata": {"name": "s", "namespace": "default"}}
    c.watched("endpointslices", {"type": "ADDED", "object": _slice("s-1", "s")})
    c.watched("endpointslices", {"type": "ADDED", "object": _slice("t-1", "t")})
    assert set(c.state.endpoint_slices) == {"default/s-1"}
    assert set(c.state.unclaimed_slices) == {"default/t-1"}
    assert c.relisted("endpointslices", [], touched=set()) == ["default/s-1", "default/t-1"]
    assert not c.state.endpoint_slices
    assert not c.state.unclaimed_slices
    c.state.namespace_labels["gone"] = {}
    assert c.relisted("namespaces", [], touched=set()) == ["gone"]


def test_a_watch_relist_makes_the_index_list_that_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []

    def list_kind(kind: str, namespace: str) -> list[dict[str, Any]]:
        listed.append(kind)
        return [_session("a")]

    monkeypatch.setattr(main, "_list_kind", list_kind)
    monkeypatch.setattr(main, "RESYNC_AFTER", 0.0)

    async def scenario() -> None:
        c = Controller(NS, "me")
        _indexed(c, "a", "b")
        c.synced = True
        # The watch came back and LISTed: `a` is reported, `b` is not, and nothing says so.
        c.watched("bgpsessions", {"type": None, "object": _session("a")})
        c.watched("bgpsessions", {"type": None, "object": _session("a")})
        for _ in range(100):
            await asyncio.sleep(0.01)
            if "b" not in c.state.sessions:
                break
        assert set(c.state.sessions) == {"a"}
        assert listed == ["bgpsessions"], "one LIST for one re-LIST"
        assert not c.resyncing

    asyncio.run(scenario())


def _lease(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"holderIdentity": name}}


def test_liveness_freezes_when_no_probe_is_answered_in_time() -> None:
    """A probe can hang: counting failed probes froze liveness only after a node's
    Lease had run out unseen. Frozen as it stood at the last answer."""
    c = Controller(NS, "me", lease_expiry=3.0)
    began = time.monotonic()
    c.contact([], began)
    c.state.lease_seen["bgplb-node-n1"] = began - 2.5  # live when last answered
    c.check_contact(began + main.CONTACT_GRACE / 2)
    assert c.frozen_live is None
    c.check_contact(began + main.CONTACT_GRACE + 0.1)
    assert c.frozen_live == {"bgplb-node-n1"}
    assert c.contact([], time.monotonic()) is True, "regained: the index lists again"
    assert c.live_nodes() == {"bgplb-node-n1"}


def test_the_elector_takes_a_refused_connection_for_a_failed_attempt() -> None:
    """The client's LeaseLock let this escape, ending the elector's thread while the
    controller went on acting."""
    from kubernetes.leaderelection import electionconfig, leaderelection

    class Refusing:
        def __getattr__(self, name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                raise MaxRetryError(None, "/leases", NewConnectionError(None, "refused"))  # type: ignore[arg-type]

            return call

    lock = main._steady_lock(main.LEADER_LEASE, NS, "me")
    lock.api_instance = Refusing()
    ok, error = lock.get(main.LEADER_LEASE, NS)
    assert not ok
    assert "MaxRetryError" in error.reason
    config = electionconfig.Config(  # type: ignore[no-untyped-call]
        lock, lease_duration=15, renew_deadline=10, retry_period=2,
        onstarted_leading=lambda: None, onstopped_leading=lambda: None,
    )  # fmt: skip
    elector = leaderelection.LeaderElection(config)  # type: ignore[no-untyped-call]
    assert elector.try_acquire_or_renew() is False  # type: ignore[no-untyped-call]


def test_a_resync_tries_again_while_the_api_server_is_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[Exception | list[dict[str, Any]]] = [RuntimeError("503"), [_session("a")]]

    def list_kind(kind: str, namespace: str) -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(main, "_list_kind", list_kind)
    monkeypatch.setattr(main, "RESYNC_AFTER", 0.0)

    async def scenario() -> None:
        c = Controller(NS, "me")
        _indexed(c, "a", "b")
        c.resync_soon("bgpsessions")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not c.resyncing:
                break
        assert set(c.state.sessions) == {"a"}
        assert not answers

    asyncio.run(scenario())
