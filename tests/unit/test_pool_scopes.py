"""Pool scopes (issue 14 item 4): which Services a pool serves, and in what order
pools are tried; a Service asking for what it may not have gets no VIP and a reason."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from bgplb.api import AddressPool
from bgplb.controller.main import Controller
from bgplb.controller.snapshot import snapshot_from
from bgplb.core.admission import Context, review
from bgplb.core.plan import plan
from bgplb.core.snapshot import Service, Snapshot
from bgplb.core.validate import Config, load
from bgplb_lab.manifests import load_balancer, service
from tests.unit.test_admission import request
from tests.unit.test_plan import snapshot


def pools(*specs: dict[str, Any]) -> list[AddressPool]:
    return [AddressPool.model_validate(s) for s in specs]


OPEN = {"name": "open", "addresses": ["203.0.113.20-203.0.113.21"]}
TEAM_A = {
    "name": "team-a",
    "addresses": ["203.0.113.10-203.0.113.11"],
    "serviceAllocation": {"namespaces": ["team-a"]},
}
WEB = {
    "name": "web",
    "addresses": ["203.0.113.30"],
    "serviceAllocation": {"serviceSelector": {"tier": "web"}, "priority": 1},
}


def with_pools(s: Snapshot, *specs: dict[str, Any]) -> Snapshot:
    assert s.load_balancer is not None
    lb = s.load_balancer.model_copy(update={"address_pools": pools(*specs)})
    return replace(s, load_balancer=lb)


def test_a_namespaced_pool_serves_only_its_namespaces() -> None:
    d = plan(with_pools(snapshot(Service("team-a", "x"), Service("team-b", "y")), TEAM_A, OPEN))
    assert d.vips["team-a/x"] == IPv4Address("203.0.113.10")
    assert d.vips["team-b/y"] == IPv4Address("203.0.113.20")
    # With no pool open to it: no VIP, and the reason.
    d = plan(with_pools(snapshot(Service("team-b", "y")), TEAM_A))
    assert "team-b/y" not in d.vips
    assert d.service_problems["team-b/y"] == (
        "no address pool serves it: address pool 'team-a' serves namespaces team-a only"
    )


def test_priority_then_selector() -> None:
    web = Service("default", "w", labels={"tier": "web"})
    other = Service("default", "o")
    d = plan(with_pools(snapshot(web, other), OPEN, WEB))
    assert d.vips["default/w"] == IPv4Address("203.0.113.30")  # priority 1 before the rest
    assert d.vips["default/o"] == IPv4Address("203.0.113.20")  # the selector keeps it out


def test_asking_for_a_pool_or_address_it_may_not_use_gives_no_vip_and_says_why() -> None:
    named = Service("team-b", "n", pool="team-a")
    asked = Service("team-b", "r", requested_ip=IPv4Address("203.0.113.11"))
    d = plan(with_pools(snapshot(named, asked), TEAM_A, OPEN))
    assert "team-b/n" not in d.vips
    assert d.service_problems["team-b/n"] == "address pool 'team-a' serves namespaces team-a only"
    assert "team-b/r" not in d.vips
    assert d.service_problems["team-b/r"] == (
        "requested 203.0.113.11: address pool 'team-a' serves namespaces team-a only"
    )


def test_manual_pools_only_on_request() -> None:
    manual = {"name": "manual", "addresses": ["203.0.113.40"], "manualAssign": True}
    d = plan(with_pools(snapshot(Service("default", "a")), manual))
    assert d.service_problems["default/a"] == "no address pool is open to automatic allocation"
    d = plan(with_pools(snapshot(Service("default", "a", pool="manual")), manual))
    assert d.vips["default/a"] == IPv4Address("203.0.113.40")


def test_the_webhook_refuses_the_same_naming_the_field() -> None:
    lb = load_balancer(addressPools=[TEAM_A, OPEN])
    ctx = Context(config=Config(load_balancer=load(lb)))  # type: ignore[arg-type]
    named = service("n", namespace="team-b")
    named["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "team-a"}
    d = review(request(named), ctx, mutate=False)
    assert [str(e) for e in d.errors] == [
        "metadata.annotations[networking.bgplb.io/address-pool]: address pool 'team-a' "
        "serves namespaces team-a only"
    ]
    asked = service("r", namespace="team-b", loadBalancerIP="203.0.113.11")
    d = review(request(asked), ctx, mutate=False)
    assert [str(e) for e in d.errors] == [
        "spec.loadBalancerIP: 203.0.113.11: address pool 'team-a' serves namespaces team-a only"
    ]
    mine = service("r", namespace="team-a", loadBalancerIP="203.0.113.11")
    assert review(request(mine), ctx, mutate=False).allowed


PROD = {
    "name": "prod",
    "addresses": ["203.0.113.40-203.0.113.41"],
    "serviceAllocation": {"namespaceSelector": {"env": "prod"}, "priority": 1},
}


def test_a_namespace_selector_serves_namespaces_by_label_and_unknown_refuses_nothing() -> None:
    prod = Service("shop", "x", namespace_labels={"env": "prod"})
    dev = Service("lab", "y", namespace_labels={"env": "dev"})
    unknown = Service("new", "z")  # its namespace not read yet
    d = plan(with_pools(snapshot(prod, dev, unknown), PROD, OPEN))
    prod_pool = {IPv4Address("203.0.113.40"), IPv4Address("203.0.113.41")}
    assert d.vips["shop/x"] in prod_pool
    assert d.vips["lab/y"] == IPv4Address("203.0.113.20")
    # Unknown labels never refuse: a namespace cache gap must not take a VIP away.
    assert d.vips["new/z"] in prod_pool
    only = plan(with_pools(snapshot(dev), PROD))
    assert only.service_problems["lab/y"] == (
        "no address pool serves it: address pool 'prod' serves namespaces labelled env=prod only"
    )


def test_the_webhook_refuses_a_pool_by_namespace_label_naming_the_annotation() -> None:
    lb = load(load_balancer(addressPools=[PROD]))
    svc = service("x", namespace="lab")
    svc["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "prod"}
    ctx = Context(config=Config(load_balancer=lb), namespace_labels={"env": "dev"})  # type: ignore[arg-type]
    d = review(request(svc), ctx, mutate=False)
    assert [str(e) for e in d.errors] == [
        "metadata.annotations[networking.bgplb.io/address-pool]: address pool 'prod' serves "
        "namespaces labelled env=prod only"
    ]
    ok = Context(config=Config(load_balancer=lb), namespace_labels={"env": "prod"})  # type: ignore[arg-type]
    assert review(request(svc), ok, mutate=False).allowed
    unread = Context(config=Config(load_balancer=lb))  # type: ignore[arg-type]
    assert review(request(svc), unread, mutate=False).allowed


def test_the_controller_reads_namespace_labels_onto_services() -> None:
    c = Controller("kube-system", "me")
    c.load("namespaces", [{"metadata": {"name": "shop", "labels": {"env": "prod"}}}])
    svc = service("x", namespace="shop")
    c.load("services", [svc, service("y", namespace="unseen")])
    s, _ = snapshot_from(c.state, 0.0, 3.0)
    labels = {x.key: x.namespace_labels for x in s.services}
    assert labels == {"shop/x": {"env": "prod"}, "unseen/y": None}
    c._route("namespaces", {"type": "MODIFIED", "object": {"metadata": {"name": "shop"}}})
    assert c.state.namespace_labels["shop"] == {}
