"""The committed CRDs are the generated ones, structural, and agree with the models."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from bgplb.api import KINDS
from bgplb.api.crd import render_all
from tests.unit.helpers import EXAMPLES, ROOT, gateway, load_balancer, manifests, peer

CRDS = ROOT / "crds"


def _crd(kind: str) -> dict[str, Any]:
    for text in render_all().values():
        doc = yaml.safe_load(text)
        if doc["spec"]["names"]["kind"] == kind:
            return doc  # type: ignore[no-any-return]
    raise KeyError(kind)


def test_committed_crds_equal_generated() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert committed == rendered, "run `make crds` and commit the result"


def _walk(node: Any, path: str = "") -> list[str]:
    """Structural-schema violations (Kubernetes API conventions for CRDs)."""
    problems = []
    if isinstance(node, dict):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "uniqueItems", "title", "$defs", "const"):
            if banned in node:
                problems.append(f"{path}: {banned}")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties together")
        if "type" not in node:
            problems.append(f"{path}: no type")
        for name, sub in node.get("properties", {}).items():
            problems += _walk(sub, f"{path}.{name}")
        if "items" in node:
            problems += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("kind", [k.KIND.kind for k in KINDS])
def test_structural(kind: str) -> None:
    crd = _crd(kind)
    version = crd["spec"]["versions"][0]
    assert _walk(version["schema"]["openAPIV3Schema"]) == []
    assert version["subresources"] == {"status": {}}
    names = crd["spec"]["names"]
    assert names["shortNames"]
    assert "bgplb" in names["categories"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "reason",
        "lastTransitionTime",
    }
    assert {"message", "observedGeneration"} <= set(conditions["items"]["properties"])


def _columns(kind: str, priority: int = 0) -> list[tuple[str, str, str]]:
    """The columns `kubectl get` shows (priority 0), or only with `-o wide` (1)."""
    version = _crd(kind)["spec"]["versions"][0]
    return [
        (c["name"].upper(), c["type"], c["jsonPath"])
        for c in version["additionalPrinterColumns"]
        if c.get("priority", 0) == priority
    ]


def test_bgpsession_columns_are_the_seeds() -> None:
    assert _columns("BGPSession", priority=1) == [("BFD", "string", ".status.bfd")]
    assert _columns("BGPSession") == [
        ("LOCAL ASN", "integer", ".spec.localASN"),
        ("PEER ASN", "integer", ".spec.peerASN"),
        ("LOCAL IP", "string", ".spec.localIP"),
        ("PEER IP", "string", ".spec.peerIP"),
        ("STATE", "string", ".status.state"),
        ("LAST REPORT", "date", ".status.lastReportTime"),
    ]


def test_other_columns() -> None:
    assert [c[0] for c in _columns("BGPAdvertisedRoute")] == ["PREFIX", "METRIC", "NEXT HOPS"]
    peer_cols = [c[0] for c in _columns("BGPPeer")]
    assert {"PEER IP", "PEER ASN", "WANTED", "ESTABLISHED"} <= set(peer_cols)
    assert [c[0] for c in _columns("NetworkGatewayGroup")][:2] == ["FLOATING IPS", "PLACED"]


def test_state_enum_is_spelt_as_in_the_seed() -> None:
    schema = _crd("BGPSession")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["status"]["properties"]["state"]["enum"] == [
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
    ]


def _validator(kind: str) -> jsonschema.Draft7Validator:
    schema = _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_satisfy_the_crd_schema(path: Any) -> None:
    for doc in manifests(path):
        errors = list(_validator(doc["kind"]).iter_errors(doc))
        assert errors == []


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (peer(peerIP="192.0.2.999"), ["spec", "peerIP"]),
        (peer(sessions=0), ["spec", "sessions"]),
        (peer(peerASN=4294967296), ["spec", "peerASN"]),
        (gateway("not-an-ip"), ["spec", "floatingIPs", 0]),
        (
            load_balancer(addressPools=[{"name": "a", "addresses": ["203.0.113.0/33"]}]),
            ["spec", "addressPools", 0, "addresses", 0],
        ),
        (
            load_balancer(addressPools=[{"name": "A_b", "addresses": ["203.0.113.0/30"]}]),
            ["spec", "addressPools", 0, "name"],
        ),
    ],
)
def test_crd_schema_rejects_nonsense_at_the_field(obj: dict[str, Any], field: list[Any]) -> None:
    errors = list(_validator(obj["kind"]).iter_errors(obj))
    assert [list(e.absolute_path) for e in errors] == [field]


def test_cel_rules_present() -> None:
    peer_spec = _crd("BGPPeer")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    rules = [r["rule"] for r in peer_spec["x-kubernetes-validations"]]
    assert "self.peerASN != self.localASN" in rules
    for kind in ("NetworkGatewayGroup", "BGPLoadBalancer"):
        root = _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert root["x-kubernetes-validations"][0]["rule"] == "self.metadata.name == 'default'"
