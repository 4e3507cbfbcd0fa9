"""A DesiredState as the API objects that carry it (pure; the controller writes them).

Sessions become BGPSession objects labelled with their node, routes become
BGPAdvertisedRoute objects named as in the seed, floating-IP placement becomes the
NetworkGatewayGroup's status.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bgplb.api import API_VERSION, BGPAdvertisedRouteSpec, ServiceRef
from bgplb.api.networkgatewaygroup import NetworkGatewayGroupStatus, UnplacedFloatingIP
from bgplb.core.plan import DesiredState
from bgplb.core.routes import CONTROL_PLANE_ROUTE, Route, route_names

NODE_LABEL = "networking.bgplb.io/node"
TYPE_LABEL = "networking.bgplb.io/type"
JSON = dict[str, Any]


def _fit(text: str, limit: int) -> str:
    """`text` if it is at most `limit` characters, else a prefix of it and a hash of
    all of it: distinct texts stay distinct, and the result still starts and ends
    with an alphanumeric character (names and label values must)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: limit - 17].rstrip('-.')}-{digest}"


def node_label_value(node: str) -> str:
    """The NODE_LABEL value for a node: its name, unless that is over the 63
    characters of a label value (a node name may have 253). The agent selects its
    sessions with the same function."""
    return _fit(node, 63)


def session_object_name(name: str) -> str:
    """A BGPSession's object name: peer and node names joined can pass 253."""
    return _fit(name, 253)


def _meta(name: str, namespace: str, labels: dict[str, str] | None = None) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return meta


def route_spec(route: Route) -> BGPAdvertisedRouteSpec:
    service = None
    if route.service is not None:
        namespace, _, name = route.service.partition("/")
        service = ServiceRef(namespace=namespace, name=name)
    return BGPAdvertisedRouteSpec(
        prefix=route.prefix, next_hops=list(route.next_hops), service=service
    )


def session_objects(desired: DesiredState, namespace: str) -> list[JSON]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "BGPSession",
            "metadata": _meta(
                session_object_name(name),
                namespace,
                {NODE_LABEL: node_label_value(spec.node_name), TYPE_LABEL: spec.type},
            ),
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        for name, spec in desired.sessions.items()
    ]


def route_objects(desired: DesiredState, namespace: str) -> list[JSON]:
    names = route_names(desired.routes)
    routes = [(names[key], route) for key, route in desired.routes.items()]
    if desired.control_plane_route is not None:
        routes.append((CONTROL_PLANE_ROUTE, desired.control_plane_route))
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "BGPAdvertisedRoute",
            "metadata": _meta(name, namespace),
            "spec": route_spec(route).model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        for name, route in sorted(routes)
    ]


def gateway_status(desired: DesiredState, generation: int = 0) -> NetworkGatewayGroupStatus:
    placement = desired.floating_ips
    return NetworkGatewayGroupStatus(
        floating_ips={str(ip): node for ip, node in placement.holders.items()},
        placed=len(placement.holders),
        releasing={str(ip): node for ip, node in placement.releasing.items()},
        epoch=placement.epoch,
        unplaced=[
            UnplacedFloatingIP(ip=ip, reason=reason) for ip, reason in placement.unplaced.items()
        ],
        observed_generation=generation,
    )
