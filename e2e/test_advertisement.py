"""Who gets which address, checked on both ToRs of the shared lab (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplb_lab.daemons import wait_for
from bgplb_lab.kubelets import BACKEND_PORT
from bgplb_lab.manifests import NAMESPACE, service
from bgplb_lab.topology import (
    BIRD_IP,
    CONTROL_PLANE_VIP,
    DEMO_VIP,
    FRR_IP,
    LOCAL_ASN,
    NODES,
    POOL,
    TOR_ASN,
    Lab,
    example_config,
)

KEY = "networking.bgplb.io/sharing-key"


def keyed(name: str, port: int, key: str | None, **spec: Any) -> dict[str, Any]:
    svc = service(
        name, selector={"app": "demo"}, ports=[{"port": port, "targetPort": BACKEND_PORT}], **spec
    )
    if key:
        svc["metadata"]["annotations"] = {KEY: key}
    return svc


def vip(lab: Lab, name: str, namespace: str = "default") -> str | None:
    ingress = lab.get_json("service", "-n", namespace, name)["status"]["loadBalancer"]
    return str(ingress["ingress"][0]["ip"]) if ingress.get("ingress") else None


def answered(lab: Lab, address: str, port: int) -> str:
    cmd = [sys.executable, "-m", "bgplb_lab.client", address, "--port", str(port), "--count", "4"]
    return lab.client.exec(*cmd, check=False, timeout=60)


def test_services_with_one_sharing_key_share_a_vip_on_both_tors(lab: Lab) -> None:
    names = ("shared-web", "shared-alt", "shared-again")
    address: str | None = None
    try:
        lab.apply([keyed("shared-web", 80, "demo"), keyed("shared-alt", 8081, "demo")])
        wait_for("both Services' VIPs", lambda: vip(lab, "shared-web") and vip(lab, "shared-alt"))
        address = vip(lab, "shared-web")
        assert address is not None
        assert vip(lab, "shared-alt") == address
        on_tors(lab, address, True)
        # One address, two Services: kube-proxy tells them apart by port.
        for port in (80, 8081):
            wait_for(f"{address}:{port} answered", serving(lab, address, port), timeout=30)
        # The same key on a port already taken there: an address of its own.
        lab.apply([keyed("shared-again", 80, "demo")])
        wait_for("the third Service's VIP", lambda: vip(lab, "shared-again"))
        assert vip(lab, "shared-again") != address
        # No key, asking for the shared address: refused, naming holder and reason.
        with pytest.raises(RuntimeError, match="already the VIP of Service default/shared-"):
            lab.apply([keyed("intruder", 9000, None, loadBalancerIP=address)])
    finally:
        lab.kubectl("delete", "service", "-n", "default", "--ignore-not-found", *names)
    on_tors(lab, address, False)


def patch_load_balancer(lab: Lab, patch: dict[str, Any]) -> None:
    """Merge-patch the lab's BGPLoadBalancer (through the webhook, as a user would)."""
    lab.kubectl(
        "patch", "bgploadbalancer", "default", "-n", NAMESPACE, "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip


def on_tors(lab: Lab, address: str, wanted: bool, timeout: float = 60) -> None:
    def there() -> bool:
        hops = lab.tor_next_hops(address).values()
        return all(hops) if wanted else not any(hops)

    wait_for(f"{address} {'on' if wanted else 'off'} both ToRs", there, timeout=timeout)


def serving(lab: Lab, address: str, port: int) -> Callable[[], bool]:
    return lambda: "FAILED" not in answered(lab, address, port)


def test_a_scoped_pool_serves_its_namespace_first_and_refuses_others(lab: Lab) -> None:
    """Pool scopes on the real API server and both ToRs: a priority pool for one
    namespace gives that namespace's Service its address; a Service elsewhere asking
    for that pool is refused by the webhook, naming the field and the reason."""
    lb = lab.get_json("bgploadbalancer", "-n", NAMESPACE, "default")
    before = lb["spec"]["addressPools"]
    scoped = {
        "name": "scoped",
        "addresses": ["203.0.113.12-203.0.113.13"],
        "serviceAllocation": {"namespaces": ["team-a"], "priority": 1},
    }
    patch = {"spec": {"addressPools": [*before, scoped]}}
    lab.kubectl("create", "namespace", "team-a")
    try:
        patch_load_balancer(lab, patch)
        # No selector: no EndpointSlice, so no "no endpoint" withdrawal to wait out.
        lab.apply([service("team-svc", namespace="team-a")])
        address = wait_for("team-a's VIP", lambda: vip(lab, "team-svc", "team-a"))
        assert address == "203.0.113.12"  # the priority pool, not pool1's free .2
        on_tors(lab, address, True)
        wrong = service("wrong-pool")
        wrong["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "scoped"}
        with pytest.raises(RuntimeError, match="serves namespaces team-a only"):
            lab.apply([wrong])
    finally:
        lab.kubectl("delete", "namespace", "team-a", "--wait=false")
        restore = {"spec": {"addressPools": before}}
        patch_load_balancer(lab, restore)
    on_tors(lab, "203.0.113.12", False)


def attributes_on_tors(lab: Lab, address: str) -> dict[str, set[tuple[Any, ...]]]:
    """Per ToR: the distinct (AS path, MED, communities, large communities) of every
    path it holds for `address` (one per next hop and session)."""
    return {
        name: {(p.as_path, p.med, p.communities, p.large_communities) for p in tor.paths(address)}
        for name, tor in (("frr", lab.frr), ("bird", lab.bird))
    }


def test_a_pools_attributes_and_a_services_communities_reach_both_tors(lab: Lab) -> None:
    """Issue 14 item 3 on the real lab: a pool announced with communities, a large
    community, a prepend and a MED; its Service adds a community by annotation. Both
    ToRs' RIBs hold exactly that on every path; a bad annotation is refused naming it."""
    lb = lab.get_json("bgploadbalancer", "-n", NAMESPACE, "default")
    before = lb["spec"]["addressPools"]
    marked = {
        "name": "marked",
        "addresses": ["203.0.113.12-203.0.113.13"],
        "manualAssign": True,
        "advertisement": {
            "communities": ["65000:100", "no-export"],
            "largeCommunities": [f"{LOCAL_ASN}:1:2"],
            "asPathPrepend": 2,
            "med": 30,
        },
    }
    patch = {"spec": {"addressPools": [*before, marked]}}
    svc = service("marked")
    svc["metadata"]["annotations"] = {
        "networking.bgplb.io/address-pool": "marked",
        "networking.bgplb.io/communities": "65000:7",
    }
    address = "203.0.113.12"
    try:
        patch_load_balancer(lab, patch)
        lab.apply([svc])  # no selector: no EndpointSlice, no "no endpoint" withdrawal
        wait_for("the marked Service's VIP", lambda: vip(lab, "marked") == address)
        on_tors(lab, address, True)
        wanted = (
            (LOCAL_ASN,) * 3,
            30,
            ("65000:7", "65000:100", "65535:65281"),
            (f"{LOCAL_ASN}:1:2",),
        )
        wait_for(
            "the attributes on both ToRs",
            lambda: attributes_on_tors(lab, address) == {"frr": {wanted}, "bird": {wanted}},
            timeout=30,
        )
        route = lab.get_json("bgpadvertisedroute", "-n", NAMESPACE, "default-default-marked")
        assert route["spec"]["communities"] == ["65000:7", "65000:100", "65535:65281"]
        # Aggregated: the /31 holding the VIP replaces the /32, with the same attributes.
        marked["advertisement"]["aggregationLength"] = 31
        patch_load_balancer(lab, {"spec": {"addressPools": [*before, marked]}})
        block = "203.0.113.12/31"
        wait_for(
            "the /31 on both ToRs instead of the /32",
            lambda: (
                attributes_on_tors(lab, block) == {"frr": {wanted}, "bird": {wanted}}
                and attributes_on_tors(lab, f"{address}/32") == {"frr": set(), "bird": set()}
            ),
            timeout=30,
        )
        bad = service("marked-bad")
        bad["metadata"]["annotations"] = {"networking.bgplb.io/communities": "65000:70000"}
        with pytest.raises(RuntimeError, match=r"networking\.bgplb\.io/communities"):
            lab.apply([bad])
    finally:
        lab.kubectl("delete", "service", "-n", "default", "--ignore-not-found", "marked")
        restore = {"spec": {"addressPools": before}}
        patch_load_balancer(lab, restore)
    on_tors(lab, address, False)
    wait_for(
        "the /31 gone from both ToRs",
        lambda: attributes_on_tors(lab, "203.0.113.12/31") == {"frr": set(), "bird": set()},
    )


def test_a_pool_with_a_peer_selector_is_announced_only_to_the_peers_it_selects(
    lab: Lab,
) -> None:
    """Issue 14 item 3: a pool whose peerSelector picks the FRR ToR's BGPPeer: its VIP
    is on FRR, never on BIRD; the other pools stay on both; no session drops."""
    lb = lab.get_json("bgploadbalancer", "-n", NAMESPACE, "default")
    before = lb["spec"]["addressPools"]
    pool = {
        "name": "frr-only",
        "addresses": ["203.0.113.12-203.0.113.13"],
        "manualAssign": True,
        "advertisement": {"peerSelector": {"vendor": "frr"}},
    }
    svc = service("frr-only")
    svc["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "frr-only"}
    address = "203.0.113.12"
    lab.kubectl("label", "bgppeer", "tor-frr", "-n", NAMESPACE, "vendor=frr")
    try:
        patch_load_balancer(lab, {"spec": {"addressPools": [*before, pool]}})
        lab.apply([svc])
        wait_for("the Service's VIP", lambda: vip(lab, "frr-only") == address)
        wait_for("on FRR", lambda: bool(lab.tor_next_hops(address)["frr"]), timeout=60)
        time.sleep(3)  # BIRD would have it by now if it were sent
        assert lab.bird.paths(address) == []
        assert all(lab.tor_next_hops(DEMO_VIP).values())  # other pools: both ToRs
        route = lab.get_json("bgpadvertisedroute", "-n", NAMESPACE, "default-default-frr-only")
        assert route["spec"]["peers"] == ["tor-frr"]
    finally:
        lab.kubectl("delete", "service", "-n", "default", "--ignore-not-found", "frr-only")
        patch_load_balancer(lab, {"spec": {"addressPools": before}})
        lab.kubectl("label", "bgppeer", "tor-frr", "-n", NAMESPACE, "vendor-")
    on_tors(lab, address, False)


def test_a_pool_selecting_namespaces_by_label_serves_them_and_refuses_others(lab: Lab) -> None:
    """namespaceSelector on the real API server: the controller (watching Namespaces)
    gives a Service in a labelled namespace the pool's address; the webhook (reading
    the Service's namespace) refuses the pool to a Service in an unlabelled one."""
    lb = lab.get_json("bgploadbalancer", "-n", NAMESPACE, "default")
    before = lb["spec"]["addressPools"]
    pool = {
        "name": "labelled",
        "addresses": ["203.0.113.12-203.0.113.13"],
        "serviceAllocation": {"namespaceSelector": {"bgplb-e2e": "yes"}, "priority": 1},
    }
    lab.kubectl("create", "namespace", "labelled")
    lab.kubectl("label", "namespace", "labelled", "bgplb-e2e=yes")
    try:
        patch_load_balancer(lab, {"spec": {"addressPools": [*before, pool]}})
        lab.apply([service("in-labelled", namespace="labelled")])
        address = wait_for(
            "the labelled namespace's VIP", lambda: vip(lab, "in-labelled", "labelled")
        )
        assert address == "203.0.113.12"  # the priority pool, by the namespace's label
        on_tors(lab, address, True)
        wrong = service("wrong-namespace")
        wrong["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "labelled"}
        with pytest.raises(RuntimeError, match="serves namespaces labelled bgplb-e2e=yes only"):
            lab.apply([wrong])
    finally:
        lab.kubectl("delete", "namespace", "labelled", "--wait=false")
        patch_load_balancer(lab, {"spec": {"addressPools": before}})
    on_tors(lab, "203.0.113.12", False)


def test_the_labs_own_config_as_an_anthos_cluster_converts_to_what_the_api_accepts(
    lab: Lab, tmp_path: Path
) -> None:
    """`bgplb convert` of the lab's configuration written the Anthos way (seed
    example 3 on the lab's addresses) is accepted by the lab's API server and
    webhook as it stands (server-side dry run: the lab keeps running as it is)."""
    n1, n2, n3 = (n.ip for n in NODES if n.control_plane)
    cluster = {
        "apiVersion": "baremetal.cluster.gke.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "lab", "namespace": "cluster-lab"},
        "spec": {
            "loadBalancer": {
                "mode": "bundled",
                "type": "bgp",
                "localASN": LOCAL_ASN,
                "bgpPeers": [
                    {
                        "ip": FRR_IP,
                        "asn": TOR_ASN,
                        "controlPlaneNodes": [n1, n2],
                    },
                    {"ip": BIRD_IP, "asn": TOR_ASN, "controlPlaneNodes": [n3]},
                ],
                "ports": {"controlPlaneLBPort": 443},
                "vips": {"controlPlaneVIP": CONTROL_PLANE_VIP},
                "addressPools": [{"name": "pool1", "addresses": [POOL]}],
            }
        },
    }
    anthos = [cluster] + [
        {**obj, "apiVersion": "networking.gke.io/v1",
         "metadata": {**obj["metadata"], "namespace": "cluster-lab"}}
        for obj in example_config(3, bfd=False)
        if obj["kind"] != "BGPLoadBalancer"
    ] + [
        {"apiVersion": "networking.gke.io/v1", "kind": "BGPLoadBalancer",
         "metadata": {"name": "default", "namespace": "cluster-lab"},
         "spec": {"peerSelector": {"cluster.baremetal.gke.io/default-peer": "true"}}},
    ]  # fmt: skip
    given = tmp_path / "anthos.yaml"
    given.write_text(yaml.safe_dump_all(anthos))
    out = tmp_path / "bgplb.yaml"
    subprocess.run(
        [sys.executable, "-m", "bgplb.cli", "convert", str(given), "--namespace", NAMESPACE,
         "-o", str(out)],
        check=True,
    )  # fmt: skip
    converted = list(yaml.safe_load_all(out.read_text()))
    assert {o["kind"] for o in converted} == {"NetworkGatewayGroup", "BGPLoadBalancer", "BGPPeer"}
    # The lab's API server, CRDs and webhook take every object as written.
    lab.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
        stdin=out.read_text(),
    )  # fmt: skip


def test_a_metallb_config_for_the_lab_converts_to_what_the_api_accepts(
    lab: Lab, tmp_path: Path
) -> None:
    """`bgplb convert` of a MetalLB configuration for the lab (its pool, both ToRs as
    BGPPeers, an advertisement with a community and an aggregation length; the
    floating IPs MetalLB has none of given on the command line): the lab's API server
    and webhook accept the output as written (server-side dry run)."""
    floating = lab.get_json("networkgatewaygroup", "-n", NAMESPACE, "default")["spec"]
    metallb = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "pool1", "namespace": "metallb-system"},
         "spec": {"addresses": [POOL]}},
        *[
            {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
             "metadata": {"name": name, "namespace": "metallb-system"},
             "spec": {"myASN": LOCAL_ASN, "peerASN": TOR_ASN, "peerAddress": ip,
                      "holdTime": "9s", "keepaliveTime": "3s"}}
            for name, ip in (("tor-frr", FRR_IP), ("tor-bird", BIRD_IP))
        ],
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
         "metadata": {"name": "all", "namespace": "metallb-system"},
         "spec": {"communities": ["65000:100"]}},
    ]  # fmt: skip
    given = tmp_path / "metallb.yaml"
    given.write_text(yaml.safe_dump_all(metallb))
    out = tmp_path / "bgplb.yaml"
    floating_args = [a for ip in floating["floatingIPs"] for a in ("--floating-ip", ip)]
    subprocess.run(
        [sys.executable, "-m", "bgplb.cli", "convert", str(given), "--namespace", NAMESPACE,
         *floating_args, "-o", str(out)],
        check=True,
    )  # fmt: skip
    converted = {o["kind"]: o for o in yaml.safe_load_all(out.read_text())}
    pools = converted["BGPLoadBalancer"]["spec"]["addressPools"]
    assert pools[0]["advertisement"] == {"communities": ["65000:100"]}
    lab.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
        stdin=out.read_text(),
    )  # fmt: skip
