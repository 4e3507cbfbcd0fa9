"""The generated CRDs in a real kube-apiserver: accepted, printing the seed's columns,
rejecting nonsense with the field named."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from bgplb_lab.daemons import wait_for
from bgplb_lab.kube import KubeAPI
from tests.unit.helpers import EXAMPLES, gateway, load_balancer, peer


def _apply(kube: KubeAPI, obj: dict[str, object]) -> str:
    return kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj), check=False)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_accepted(kube: KubeAPI, path: object) -> None:
    kube.kubectl("apply", "--dry-run=server", "-f", str(path))


def test_get_bgpsessions_prints_the_seeds_columns(kube: KubeAPI) -> None:
    session = {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPSession",
        "metadata": {"name": "bgppeer1-node-03", "namespace": "kube-system"},
        "spec": {
            "floatingIP": "192.0.2.178",
            "localASN": 65500,
            "localIP": "192.0.2.178",
            "nodeName": "node-03",
            "peerASN": 65000,
            "peerIP": "192.0.2.254",
        },
    }
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(session))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "status": {
            "state": "Established",
            "lastReportTime": now,
            "advertisedRoutes": ["203.0.113.1/32"],
        }
    }
    kube.kubectl(
        "patch",
        "bgpsession",
        "bgppeer1-node-03",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    out = kube.kubectl("get", "bgpsessions").splitlines()
    assert out[0].split() == [
        "NAME",
        "LOCAL",
        "ASN",
        "PEER",
        "ASN",
        "LOCAL",
        "IP",
        "PEER",
        "IP",
        "STATE",
        "LAST",
        "REPORT",
    ]
    row = out[1].split()
    assert row[:6] == [
        "bgppeer1-node-03",
        "65500",
        "65000",
        "192.0.2.178",
        "192.0.2.254",
        "Established",
    ]
    assert row[6].endswith("s")  # an age, like the seed's "2s"
    # Short name and category work too.
    assert "bgppeer1-node-03" in kube.kubectl("get", "bgps")
    assert "bgppeer1-node-03" in kube.kubectl("get", "bgplb")
    kube.kubectl("delete", "bgpsession", "bgppeer1-node-03")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (peer(peerASN=65001), "spec.peerASN: Invalid value"),
        (peer(sessions=0), "spec.sessions: Invalid value: 0"),
        (peer(peerIP="192.0.2.300"), "spec.peerIP in body must be of type ipv4"),
        (peer(localASN=4294967296), "spec.localASN: Invalid value: 4294967296"),
        (peer(keepaliveTimeSeconds=60), "keepaliveTimeSeconds must be at most a third"),
        (gateway("192.0.2.1", "192.0.2.1"), 'spec.floatingIPs[1]: Duplicate value: "192.0.2.1"'),
        (gateway("192.0.2.1", name="other"), "metadata.name must be 'default'"),
        (load_balancer(name="other"), "metadata.name must be 'default'"),
        (
            load_balancer(addressPools=[{"name": "a", "addresses": ["203.0.113.0/40"]}]),
            "spec.addressPools[0].addresses[0]: Invalid value",
        ),
        (load_balancer(localASN=0), "spec.localASN: Invalid value: 0"),
    ],
)
def test_nonsense_is_rejected_naming_the_field(
    kube: KubeAPI, obj: dict[str, object], message: str
) -> None:
    out = _apply(kube, obj)
    assert message in out, out
    assert "created" not in out


def test_kubectl_explain_describes_the_fields(kube: KubeAPI) -> None:
    # The API server publishes a new CRD's OpenAPI a moment after it is created.
    out = wait_for(
        "bgppeers in kubectl explain",
        lambda: kube.kubectl("explain", "bgppeers.spec.bfd"),
        timeout=30,
        every=0.5,
    )
    assert "BFD on the session" in out
    assert "detectMultiplier" in out
    out = kube.kubectl("explain", "bgpsessions.status.lastReportTime")
    assert "When the node's agent last reported" in out


def test_the_seeds_third_load_balancer_is_accepted_as_written(kube: KubeAPI) -> None:
    """Only peerSelector: localASN is no longer required by the schema."""
    lb = {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPLoadBalancer",
        "metadata": {"name": "default", "namespace": "kube-system"},
        "spec": {"peerSelector": {"cluster.baremetal.gke.io/default-peer": "true"}},
    }
    kube.kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(lb))
