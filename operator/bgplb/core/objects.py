"""A DesiredState as the API objects that carry it (pure; the controller writes them).

Sessions become BGPSession objects labelled with their node, routes become
BGPAdvertisedRoute objects named as in the seed, floating-IP placement becomes the
NetworkGatewayGroup's status.
"""

from __future__ import annotations

from typing import Any

from bgplb.api import API_VERSION, BGPAdvertisedRouteSpec, ServiceRef
from bgplb.api.contract import NODE_LABEL, TYPE_LABEL, fit, node_label_value
from bgplb.api.networkgatewaygroup import NetworkGatewayGroupStatus, UnplacedFloatingIP
from bgplb.core.plan import DesiredState
from bgplb.core.routes import CONTROL_PLANE_ROUTE, Route, route_names

JSON = dict[str, Any]


def session_object_name(name: str) -> str:
    """A BGPSession's object name: peer and node names joined can pass 253."""
    return fit(name, 253)


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
    a = route.attributes
    return BGPAdvertisedRouteSpec(
        prefix=route.prefix,
        next_hops=list(route.next_hops),
        service=service,
        metric=a.med,
        communities=a.community_texts() or None,
        large_communities=a.large_community_texts() or None,
        as_path_prepend=a.as_path_prepend or None,
        draining_next_hops=list(route.draining) or None,
        aggregation_length=route.aggregation_length if route.aggregation_length < 32 else None,
        peers=list(route.peers) if route.peers is not None else None,
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
