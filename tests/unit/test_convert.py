"""`bgplb convert` on the seed's three examples and MetalLB's documented ones: the
output passes `bgplb validate`, and what is not carried over is warned about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplb.api import BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
from bgplb.cli import main
from bgplb.convert import MIGRATED_LABEL, convert
from bgplb.core.validate import Config, parse, validate

HERE = Path(__file__).parent / "convert"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((HERE / name).read_text()) if d]


def valid(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every object passes validate against the others (as `bgplb validate` checks a
    set of files); returns them by kind/name."""
    parsed = [parse(o)[0] for o in objects]
    config = Config(
        load_balancer=next((r for r in parsed if isinstance(r, BGPLoadBalancer)), None),
        gateway=next((r for r in parsed if isinstance(r, NetworkGatewayGroup)), None),
        peers=[r for r in parsed if isinstance(r, BGPPeer)],
    )
    for obj in objects:
        assert validate(obj, config)[1] == [], obj
        assert obj["apiVersion"] == "networking.bgplb.io/v1"
        assert obj["metadata"]["namespace"] == "kube-system"
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_seed_example_1_control_plane_peers_carry_everything() -> None:
    out = convert(docs("anthos-1.yaml"), "kube-system")
    objects = valid(out.objects)
    assert set(objects) == {"NetworkGatewayGroup/default", "BGPLoadBalancer/default"}
    lb = objects["BGPLoadBalancer/default"]["spec"]
    assert lb["localASN"] == 65001
    assert lb["controlPlane"]["peers"] == [
        {"ip": "10.8.0.10", "asn": 65002},
        {"ip": "10.8.0.11", "asn": 65002},
    ]
    assert objects["NetworkGatewayGroup/default"]["spec"]["floatingIPs"] == [
        "10.0.1.100",
        "10.0.2.100",
    ]
    assert out.warnings == []


def test_seed_example_2_keeps_the_node_mapping() -> None:
    out = convert(docs("anthos-2.yaml"), "kube-system")
    lb = valid(out.objects)["BGPLoadBalancer/default"]["spec"]
    assert lb["controlPlane"]["peers"][0]["controlPlaneNodes"] == ["10.0.1.10", "10.0.1.11"]
    assert out.warnings == []


def test_seed_example_3_merges_the_cluster_into_the_load_balancer() -> None:
    out = convert(docs("anthos-3.yaml"), "kube-system")
    objects = valid(out.objects)
    assert set(objects) == {
        "NetworkGatewayGroup/default",
        "BGPLoadBalancer/default",
        "BGPPeer/bgppeer1",
    }
    lb = objects["BGPLoadBalancer/default"]["spec"]
    assert lb["peerSelector"] == {"cluster.baremetal.gke.io/default-peer": "true"}
    assert lb["controlPlane"]["vip"] == "10.0.0.8"
    assert lb["controlPlane"]["port"] == 443
    assert lb["addressPools"] == [{"name": "pool1", "addresses": ["10.0.0.1-10.0.0.4"]}]
    assert objects["BGPPeer/bgppeer1"]["metadata"]["labels"] == {
        "cluster.baremetal.gke.io/default-peer": "true"
    }
    assert out.warnings == [
        "Cluster/bm: spec.loadBalancer.vips.ingressVIP: bgplb runs no ingress: give your "
        "ingress Service spec.loadBalancerIP: 10.0.0.1 (it is in a pool)"
    ]


def test_a_layer2_cluster_is_warned_about_not_converted() -> None:
    cluster = docs("anthos-1.yaml")[0]
    cluster["spec"]["loadBalancer"]["type"] = "layer2"
    out = convert([cluster], "kube-system")
    assert out.objects == []
    assert out.warnings == [
        "Cluster/bm: spec.loadBalancer.type: 'layer2': only BGP is carried over"
    ]


def test_metallb_pools_peers_and_bfd() -> None:
    out = convert(docs("metallb-bgp.yaml"), "kube-system", ["192.0.2.100", "192.0.2.101"])
    objects = valid(out.objects)
    lb = objects["BGPLoadBalancer/default"]["spec"]
    assert lb["localASN"] == 64500
    assert lb["peerSelector"] == {MIGRATED_LABEL: "metallb"}
    assert lb["addressPools"] == [
        {"name": "first-pool", "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5"]},
        {
            "name": "expensive",
            "addresses": ["42.176.25.64/30"],
            "manualAssign": True,
            "avoidBuggyIPs": True,
        },
    ]
    peer = objects["BGPPeer/sample"]
    assert peer["metadata"]["labels"] == {MIGRATED_LABEL: "metallb"}
    assert peer["spec"] == {
        "localASN": 64500,
        "peerASN": 64501,
        "peerIP": "10.0.0.1",
        "ebgpMultihopTTL": 1,
        "bfd": {
            "transmitIntervalMilliseconds": 270,
            "receiveIntervalMilliseconds": 380,
            "detectMultiplier": 37,
        },
    }
    assert objects["NetworkGatewayGroup/default"]["spec"]["floatingIPs"] == [
        "192.0.2.100",
        "192.0.2.101",
    ]
    assert sorted(out.warnings) == [
        "BFDProfile/full: spec.echoMode: not carried over: bgplb's BFD has no such setting",
        "IPAddressPool/first-pool: spec.addresses[2]: fc00:f853:0ccd:e799::/124: IPv6 is "
        "not carried over",
        "L2Advertisement/example: kind: layer 2 mode is not carried over: bgplb advertises "
        "over BGP only",
    ]


def test_metallb_advanced_settings_are_carried_or_warned_about() -> None:
    out = convert(docs("metallb-advanced.yaml"), "kube-system", ["192.0.2.100"])
    objects = valid(out.objects)
    pools = objects["BGPLoadBalancer/default"]["spec"]["addressPools"]
    assert pools[1]["serviceAllocation"] == {
        "priority": 50,
        "namespaces": ["namespace-a"],
        "serviceSelector": {"foo": "bar"},
    }
    peer = objects["BGPPeer/example"]["spec"]
    assert peer["holdTimeSeconds"] == 90
    assert peer["keepaliveTimeSeconds"] == 30
    assert peer["ebgpMultihopTTL"] == 255
    assert peer["passwordSecretRef"] == {"name": "secretname", "key": "password"}
    # The advertisement's community goes with the pool it names; aggregationLength 32
    # is what bgplb does anyway; localPref cannot travel over eBGP.
    assert pools[0]["advertisement"] == {"communities": ["65535:65282"]}
    assert "advertisement" not in pools[1]
    fields = sorted(w.split(": ")[1] for w in out.warnings)
    assert fields == [
        "metadata.name",  # the pool no advertisement names
        "spec.localPref",
        "spec.nodeSelectors",
        "spec.passwordSecret",
        "spec.peerPort",
    ]
    assert any(w.startswith("IPAddressPool/unadvertised: metadata.name:") for w in out.warnings)


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"peerASN": 64500}, "iBGP (peerASN is myASN): bgplb speaks eBGP only; left out"),
        ({"holdTime": "soon"}, "'soon' is not a duration: left out"),
        ({"password": "s3cret"}, "a plain password is not carried over"),
    ],
)
def test_what_cannot_be_carried_is_left_out_with_a_warning(
    change: dict[str, Any], warning: str
) -> None:
    given = docs("metallb-bgp.yaml")
    peer = next(d for d in given if d["kind"] == "BGPPeer")
    peer["spec"] |= change
    out = convert(given, "kube-system", ["192.0.2.100"])
    valid(out.objects)
    assert any(warning in w for w in out.warnings), out.warnings
    assert "s3cret" not in yaml.safe_dump_all(out.objects)


def test_without_floating_ips_metallb_converts_with_a_warning_saying_what_to_add() -> None:
    out = convert(docs("metallb-bgp.yaml"), "kube-system")
    assert "NetworkGatewayGroup/default" not in valid(out.objects)
    assert any("--floating-ip" in w for w in out.warnings)


def test_the_command_writes_what_validate_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bgplb.yaml"
    assert main(["convert", str(HERE / "anthos-3.yaml"), "-o", str(output)]) == 0
    assert "ingressVIP" in capsys.readouterr().err
    assert main(["validate", str(output)]) == 0
    assert "3 valid, 0 invalid" in capsys.readouterr().out


def test_communities_aliases_and_aggregation_are_carried_to_the_pools_named() -> None:
    """MetalLB's Community object names values; 'large:' marks a large community.
    A community that is not one is left out with a warning naming its index."""
    given = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "a"}, "spec": {"addresses": ["198.51.100.0/28"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "b"}, "spec": {"addresses": ["198.51.100.16/28"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "Community",
         "metadata": {"name": "c"},
         "spec": {"communities": [{"name": "vpn-only", "value": "1234:1"},
                                  {"name": "big", "value": "large:64512:1:2"}]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
         "metadata": {"name": "ad"},
         "spec": {"ipAddressPools": ["a"], "communities": ["vpn-only", "big", "99999:1"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
         "metadata": {"name": "all"},
         "spec": {"communities": ["no-export"], "aggregationLength": 30}},
    ]  # fmt: skip
    out = convert(given, "kube-system", ["192.0.2.100"])
    pools = valid(out.objects)["BGPLoadBalancer/default"]["spec"]["addressPools"]
    assert pools[0]["advertisement"] == {
        "communities": ["1234:1", "no-export"],
        "largeCommunities": ["64512:1:2"],
        "aggregationLength": 30,
    }
    assert pools[1]["advertisement"] == {"communities": ["no-export"], "aggregationLength": 30}
    assert [w for w in out.warnings if "communities[2]" in w] == [
        "BGPAdvertisement/ad: spec.communities[2]: '99999:1': both halves of a community "
        "are at most 65535: left out"
    ]


def test_a_namespace_selector_of_match_labels_is_carried() -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "prod"},
        "spec": {
            "addresses": ["198.51.100.0/28"],
            "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"env": "prod"}}]},
        },
    }
    out = convert([pool], "kube-system", ["192.0.2.100"])
    pools = valid(out.objects)["BGPLoadBalancer/default"]["spec"]["addressPools"]
    assert pools[0]["serviceAllocation"] == {"namespaceSelector": {"env": "prod"}}
    expression = {"matchExpressions": [{"key": "env", "operator": "Exists"}]}
    pool["spec"]["serviceAllocation"]["namespaceSelectors"] = [expression]
    out = convert([pool], "kube-system", ["192.0.2.100"])
    assert any("namespaceSelectors: only one selector of matchLabels" in w for w in out.warnings)
