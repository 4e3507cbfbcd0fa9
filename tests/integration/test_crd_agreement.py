"""The CRDs and the models agree: objects generated from each CRD's schema that a
real kube-apiserver accepts (server-side dry run: patterns, formats, CEL rules) must
be readable by the models the controller and the agents read them with. A
disagreement is an object users can store that bgplb cannot read — the controller
then keeps its last good plan, but the user was never told at `kubectl apply`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bgplb.api import KINDS
from bgplb.api.common import read
from bgplb_lab.kube import KubeAPI
from tests.unit.helpers import ROOT

NS = "default"
JSON = dict[str, Any]
LABEL = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


def strategy(schema: JSON) -> st.SearchStrategy[Any]:
    """Values of a structural schema's shape: its types, bounds, patterns and
    formats (CEL rules are left to the API server to judge)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props: JSON = schema.get("properties", {})
        if not props:
            return st.dictionaries(LABEL, LABEL, max_size=2)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: strategy(v) for k, v in props.items() if k in required},
            optional={k: strategy(v) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        items = strategy(schema["items"])
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", 3), low + 3)
        unique = schema.get("x-kubernetes-list-type") == "set"
        return st.lists(items, min_size=low, max_size=high, unique=unique)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31 - 1))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return _string(schema)
    raise AssertionError(f"no strategy for {schema}")


def _string(schema: JSON) -> st.SearchStrategy[str]:
    fmt = schema.get("format")
    if fmt == "ipv4":
        return st.ip_addresses(v=4).map(str)
    if fmt == "cidr":  # host bits set or not: both are CIDR-shaped
        return st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}")
    if fmt == "date-time":
        return st.just("2026-11-22T10:00:00Z")
    low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
    if "pattern" in schema:
        text = st.from_regex(schema["pattern"], fullmatch=True)
    else:
        text = st.text(st.characters(codec="ascii", min_codepoint=32), max_size=high)
    return text.filter(lambda s: low <= len(s) <= high)


def _crd(kind: str) -> JSON:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["spec"]["names"]["kind"] == kind:
            return doc  # type: ignore[no-any-return]
    raise KeyError(kind)


def _object(kind: str) -> tuple[str, st.SearchStrategy[JSON]]:
    crd = _crd(kind)
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    api_version = f"{crd['spec']['group']}/{version['name']}"
    body = strategy(spec).map(
        lambda s: {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "default", "namespace": NS},
            "spec": s,
        }
    )
    return crd["spec"]["names"]["plural"], body


@pytest.fixture(scope="module")
def api(kube: KubeAPI) -> Any:
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(str(kube.kubeconfig)))


@pytest.mark.parametrize("resource", KINDS, ids=lambda r: r.KIND.kind)
def test_what_the_api_server_accepts_the_models_read(api: Any, resource: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    plural, objects = _object(resource.KIND.kind)
    accepted = []

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(objects)
    def check(obj: JSON) -> None:
        group, version = obj["apiVersion"].split("/")
        try:
            stored = api.create_namespaced_custom_object(
                group, version, NS, plural, obj, dry_run="All"
            )
        except ApiException as e:
            assume(e.status != 422)  # not CRD-valid: not this test's concern
            raise
        accepted.append(stored)
        try:
            read(resource, stored)
        except ValidationError as e:
            pytest.fail(
                f"the API server stores what the model cannot read:\n"
                f"{json.dumps(stored['spec'], indent=1)[:1500]}\n{e}"
            )

    check()
    assert accepted, "no generated object was CRD-valid: the strategy is wrong"


@pytest.mark.parametrize(
    "entry", ["10.0.0.1/24", "10.0.0.5-10.0.0.1", "203.0.113.0/24", "203.0.113.1-203.0.113.1"]
)
def test_pool_entries_the_model_refuses_the_api_server_refuses(api: Any, entry: str) -> None:
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPLoadBalancer",
        "metadata": {"name": "default", "namespace": NS},
        "spec": {"localASN": 65001, "addressPools": [{"name": "p", "addresses": [entry]}]},
    }
    network_ok = (
        "/" not in entry or ipaddress.ip_network(entry, strict=False).with_prefixlen == entry
    )
    first, _, last = entry.partition("-")
    range_ok = not last or ipaddress.ip_address(first) <= ipaddress.ip_address(last)
    try:
        api.create_namespaced_custom_object(
            "networking.bgplb.io", "v1", NS, "bgploadbalancers", body, dry_run="All"
        )
        refused = ""
    except ApiException as e:
        refused = f"{e.status}: {json.loads(e.body)['message']}"
    if network_ok and range_ok:
        assert not refused
    else:
        assert refused.startswith("422: "), refused
        assert "spec.addressPools[0].addresses[0]" in refused, refused
