"""Admission decisions, pure: an AdmissionReview request and what the cluster holds
→ allowed or not (every reason naming its field), warnings, and the defaults patch.

The rules are the validation module's (`check_object`, `check_against`) plus what
only admission can see: the nodes' subnets for floating IPs, and other Services for
a requested VIP. The webhook server (webhooks/) only gathers the context and speaks
HTTP.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from bgplb.api import BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
from bgplb.api.common import Resource
from bgplb.api.contract import (
    ALLOW_DELETE_ANNOTATION,
    POOL_ANNOTATION,
    SHARING_KEY,
    SHARING_KEY_ANNOTATION,
    SINGLETON_NAME,
    is_ours,
    vips_of,
)
from bgplb.core import sharing
from bgplb.core.attributes import from_annotations
from bgplb.core.pools import Pool
from bgplb.core.validate import (
    Config,
    FieldError,
    check_against,
    check_object,
    parse,
)

JSON = Mapping[str, Any]

SINGLETON_KINDS = ("BGPLoadBalancer", "NetworkGatewayGroup")


@dataclass(frozen=True)
class Context:
    """What the webhook read from the cluster for one request."""

    config: Config = field(default_factory=Config)
    node_subnets: Sequence[IPv4Network] = ()
    """Subnets of the nodes' addresses (from the agents' Leases); empty: unknown."""
    services: Sequence[JSON] = ()
    """Every Service of type LoadBalancer (for VIP conflicts)."""
    namespace: str | None = None
    """The operator's namespace: our objects anywhere else would be ignored."""
    namespace_labels: Mapping[str, str] | None = None
    """The labels of a Service's namespace, read only when a pool selects namespaces
    by label (None: not read, or not readable — then nothing is refused for it)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] | None = None

    @property
    def message(self) -> str:
        return "; ".join(str(e) for e in self.errors)


# --- our kinds ------------------------------------------------------------------------


def _floating_ips_on_node_subnets(gw: NetworkGatewayGroup, ctx: Context) -> list[FieldError]:
    if not ctx.node_subnets:
        return []  # no agent has reported yet: nothing to judge against
    known = ", ".join(sorted({str(n) for n in ctx.node_subnets}))
    return [
        FieldError(
            f"spec.floatingIPs[{i}]",
            f"{ip} is on no node's subnet ({known}): no node could hold it",
        )
        for i, ip in enumerate(gw.spec.floating_ips)
        if not any(ip in net for net in ctx.node_subnets)
    ]


def _config_without(res: Resource, config: Config) -> Config:
    """The configuration as it will be once `res` is stored (itself replaced)."""
    if isinstance(res, BGPPeer):
        peers = [p for p in config.peers if p.metadata.name != res.metadata.name]
        return replace(config, peers=[*peers, res])
    if isinstance(res, BGPLoadBalancer):
        return replace(config, load_balancer=res)
    if isinstance(res, NetworkGatewayGroup):
        return replace(config, gateway=res)
    return config


def risks(res: Resource, config: Config) -> list[str]:
    """Legal setups the seed advises against, as admission warnings."""
    out: list[str] = []
    if isinstance(res, NetworkGatewayGroup) and len(res.spec.floating_ips) == 1:
        out.append(
            "spec.floatingIPs: only one floating IP — while its node fails, every Service "
            "session drops until the IP moves; use at least two"
        )
    if isinstance(res, BGPPeer):
        if res.spec.sessions == 1:
            out.append(
                "spec.sessions: 1 — when the node holding its floating IP fails, this peer "
                "loses every Service route until the IP moves; use 2"
            )
        if len(_config_without(res, config).peers) == 1:
            out.append(
                "only one BGPPeer — one ToR failure takes every Service VIP down; "
                "peer with at least two"
            )
    if isinstance(res, BGPLoadBalancer):
        cp = res.spec.control_plane
        if cp is not None and len(cp.peers) == 1:
            out.append(
                "spec.controlPlane.peers: only one peer — one ToR failure takes the "
                "control-plane VIP down; use at least two"
            )
    return out


def _defaults_patch(obj: JSON, res: Resource) -> list[dict[str, Any]] | None:
    """Replace spec with the spec the model reads, defaults filled in."""
    spec = getattr(res, "spec", None)
    if spec is None:
        return None
    defaulted = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if defaulted == obj.get("spec"):
        return None
    return [{"op": "add", "path": "/spec", "value": defaulted}]


def review_ours(obj: JSON, ctx: Context, *, mutate: bool) -> Decision:
    res, errors = parse(obj)
    if res is not None:
        errors = check_object(res) + check_against(res, ctx.config)
        if isinstance(res, NetworkGatewayGroup):
            errors += _floating_ips_on_node_subnets(res, ctx)
        namespace = (obj.get("metadata") or {}).get("namespace")
        if ctx.namespace and namespace and namespace != ctx.namespace:
            errors.append(
                FieldError(
                    "metadata.namespace",
                    f"bgplb reads its configuration from namespace {ctx.namespace!r} only",
                )
            )
    if res is None or errors:
        # Defaulting never refuses: the validating webhook gives the reasons, once.
        return Decision(True) if mutate else Decision(False, errors)
    patch = _defaults_patch(obj, res) if mutate else None
    return Decision(True, warnings=[] if mutate else risks(res, ctx.config), patch=patch)


# --- Services -------------------------------------------------------------------------


def review_service(svc: JSON, ctx: Context) -> Decision:
    if not is_ours(svc):
        return Decision(True)
    meta, spec = svc.get("metadata", {}), svc.get("spec", {})
    lb = ctx.config.load_balancer
    pools = {p.name: Pool.from_api(p) for p in lb.spec.address_pools} if lb else {}
    errors: list[FieldError] = []
    pool_name = (meta.get("annotations") or {}).get(POOL_ANNOTATION)
    annotation_path = f"metadata.annotations[{POOL_ANNOTATION}]"
    namespace, labels = str(meta.get("namespace") or ""), meta.get("labels") or {}

    def refused(pool: Pool) -> str | None:
        return pool.refuses(namespace, labels, ctx.namespace_labels)

    if pool_name is not None and lb is not None and pool_name not in pools:
        known = ", ".join(sorted(pools)) or "none"
        errors.append(
            FieldError(annotation_path, f"no address pool {pool_name!r} (pools: {known})")
        )
    elif pool_name in pools and (why := refused(pools[pool_name])):
        errors.append(FieldError(annotation_path, why))
    errors += _sharing_key_errors(meta)
    _, bad = from_annotations(meta.get("annotations") or {})
    errors += [FieldError(path, why) for path, why in bad]
    text = spec.get("loadBalancerIP")
    if not text:
        return Decision(not errors, errors)
    try:
        ip = IPv4Address(text)
    except ValueError:
        errors.append(FieldError("spec.loadBalancerIP", f"{text!r} is not an IPv4 address"))
        return Decision(False, errors)
    if lb is None:
        return Decision(
            not errors, errors, warnings=["no BGPLoadBalancer yet: the VIP cannot be checked"]
        )
    allowed_pools = [pools[pool_name]] if pool_name in pools else list(pools.values())
    holding = [p for p in allowed_pools if int(ip) in p]
    if not holding:
        where = f"address pool {pool_name!r}" if pool_name in pools else "any address pool"
        errors.append(FieldError("spec.loadBalancerIP", f"{ip} is not in {where}"))
    elif all(refused(p) for p in holding):
        errors.append(
            FieldError(
                "spec.loadBalancerIP",
                f"{ip}: {refused(holding[0])}",
            )
        )
    me = sharing.of_object(svc)
    others = (sharing.of_object(o) for o in ctx.services if is_ours(o) and ip in vips_of(o))
    holders = [o for o in others if o.key != me.key]
    if (why := sharing.conflict(me, holders)) is not None:
        errors.append(
            FieldError("spec.loadBalancerIP", f"{ip} is already the VIP of Service {why}")
        )
    return Decision(not errors, errors)


def _sharing_key_errors(meta: JSON) -> list[FieldError]:
    value = (meta.get("annotations") or {}).get(SHARING_KEY_ANNOTATION)
    if value is None:
        return []
    if not isinstance(value, str) or not SHARING_KEY.fullmatch(value):
        return [
            FieldError(
                f"metadata.annotations[{SHARING_KEY_ANNOTATION}]",
                f"{value!r} is not a sharing key: 1-63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit",
            )
        ]
    return []


# --- AdmissionReview ------------------------------------------------------------------


def review_delete(old: JSON, ctx: Context) -> Decision:
    """Deleting a singleton that Services use is refused: its ownerReferences would
    let the garbage collector delete every BGPSession and route, withdrawing every
    VIP at once. Anything else may go."""
    meta = old.get("metadata") or {}
    if old.get("kind") not in SINGLETON_KINDS or meta.get("name") != SINGLETON_NAME:
        return Decision(True)
    if (meta.get("annotations") or {}).get(ALLOW_DELETE_ANNOTATION) == "true":
        return Decision(True)
    users = sorted(
        f"{m.get('namespace')}/{m.get('name')}"
        for svc in ctx.services
        if is_ours(svc) and vips_of(svc) and (m := svc.get("metadata") or {})
    )
    if not users:
        return Decision(True)
    shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
    reason = (
        f"{len(users)} Service(s) have their VIP from it ({shown}); deleting it would "
        "withdraw every VIP. Delete those Services first, or set the annotation "
        f"{ALLOW_DELETE_ANNOTATION}=true to delete it anyway"
    )
    return Decision(False, [FieldError("metadata.name", reason)])


def review(request: JSON, ctx: Context, *, mutate: bool) -> Decision:
    if request.get("operation") == "DELETE":
        return Decision(True) if mutate else review_delete(request.get("oldObject") or {}, ctx)
    obj = request.get("object") or {}
    if obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
        return Decision(True) if mutate else review_service(obj, ctx)
    return review_ours(obj, ctx, mutate=mutate)


def response(request: JSON, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview (v1) answering `request`."""
    body: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": decision.allowed}
    if not decision.allowed:
        body["status"] = {"code": 422, "reason": "Invalid", "message": decision.message}
    if decision.warnings:
        body["warnings"] = decision.warnings
    if decision.patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}
